"""What the joint search found that the sequential one could not, computed, for the report.

The sequential baseline fixes the architecture at 8 bits on the default accelerator, then the
bits, then the hardware.  A joint design beyond its reach shows up as a joint front member that
no sequential front member weakly dominates; for the best such design (the one adding most
hypervolume over the sequential front) this module compares it with the sequential design
closest in accuracy, on facts the cost models compute rather than assert:

- how busy each network keeps its array (SCALE-Sim's overall utilisation, stalls included,
  MAC-weighted) and how busy it would keep the other design's array;
- whether the quantized weights fit the filter SRAM (else weights stream from DRAM every fold);
- DRAM traffic, array size and the bits chosen.
"""
from __future__ import annotations

import numpy as np

from codesign.search.pareto import as_minimization, hv_scale


def beyond_sequential(joint: list, sequential: list, objectives: list[str]) -> list:
    """Joint front rows that no sequential front row weakly dominates."""
    if not sequential:
        return list(joint)
    s = as_minimization([r.metrics for r in sequential], objectives)
    out = []
    for r in joint:
        j = as_minimization([r.metrics], objectives)[0]
        if not np.any(np.all(s <= j, axis=1)):
            out.append(r)
    return out


def compare(problem, fronts: dict[str, list], objectives: list[str]) -> dict | None:
    """Findings for the report and pareto.json, or None without both fronts."""
    joint, seq = fronts.get("joint") or [], fronts.get("sequential") or []
    if not joint or not seq:
        return None
    extra = beyond_sequential(joint, seq, objectives)
    out = {"joint_front": len(joint), "sequential_front": len(seq), "joint_beyond_sequential": len(extra)}
    if not extra or not problem.is_template:
        return out
    best = _largest_gain(extra, seq, objectives)
    rival = min(seq, key=lambda r: abs(r.metrics["accuracy"] - best.metrics["accuracy"]))
    jd, sd = _design(problem, best), _design(problem, rival)
    jd["utilization_on_other_array_pct"] = _utilization(problem, best, rival.candidate.hw)
    sd["utilization_on_other_array_pct"] = _utilization(problem, rival, best.candidate.hw)
    out.update(joint_design=jd, sequential_design=sd, findings=_findings(jd, sd, objectives))
    return out


def _largest_gain(extra: list, seq: list, objectives: list[str]):
    from pymoo.indicators.hv import HV

    rows = [r.metrics for r in extra + seq]
    f = hv_scale(rows, objectives)            # the scale the fronts are scored on
    lo, hi = f.min(axis=0), f.max(axis=0)
    z = (f - lo) / np.where(hi > lo, hi - lo, 1.0)
    hv = HV(ref_point=np.full(len(objectives), 1.1))
    base = z[len(extra):]
    v0 = hv(base)
    gains = [hv(np.vstack([base, z[i][None]])) - v0 for i in range(len(extra))]
    return extra[int(np.argmax(gains))]


def _design(problem, row) -> dict:
    ev = problem.evaluation
    cand = row.candidate
    wl, bits = ev.assignment(cand, ev.bit_map(cand, ev.module(cand.arch)))
    cost = ev.model.estimate(wl, ev.hw_target(cand.hw), bits)
    array = [l for l in cost.layers if "cycles" in l.extra]
    macs = sum(l.macs for l in array) or 1
    hw = {k: cand.hw[k] for k in ("rows", "cols", "dataflow", "ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb",
                                  "dram_bandwidth_words") if k in cand.hw}
    weight_kb = row.metrics["size_kb"]
    return {"strategy": row.strategy, "trial": row.number, "metrics": {o: row.metrics[o] for o in
                                                                        ("accuracy", "latency_ms", "energy_mj",
                                                                         "area_mm2", "size_kb") if o in row.metrics},
            "arch": cand.arch, "bits": sorted({tuple(b) for b in cand.bits.values()}), "hw": hw,
            "array_utilization_pct": 100.0 * sum(l.macs * l.utilization for l in array) / macs,
            "weights_fit_filter_sram": bool(weight_kb <= hw.get("filter_sram_kb", 0)),
            "dram_mb": sum(l.dram_bytes for l in cost.layers) / 2**20}


def _utilization(problem, row, hw: dict) -> float:
    """MAC-weighted array utilisation of ``row``'s network on another design's array."""
    ev = problem.evaluation
    cand = row.candidate
    wl, bits = ev.assignment(cand, ev.bit_map(cand, ev.module(cand.arch)))
    cost = ev.model.estimate(wl, ev.hw_target({**cand.hw, **{k: v for k, v in hw.items() if k != "tradeoff"}}), bits)
    array = [l for l in cost.layers if "cycles" in l.extra]
    return 100.0 * sum(l.macs * l.utilization for l in array) / (sum(l.macs for l in array) or 1)


def _findings(j: dict, s: dict, objectives: list[str]) -> list[str]:
    """Plain sentences, every number computed above."""
    jm, sm = j["metrics"], s["metrics"]
    others = [o for o in objectives if o != "accuracy"]
    jh, sh = j["hw"], s["hw"]
    out = [f"joint trial {j['trial']}: accuracy {jm['accuracy']:.4f}, "
           + ", ".join(f"{o} {jm[o]:.4g}" for o in others)
           + f"; no sequential front member is at least as good in every objective. The sequential one closest in "
           f"accuracy (trial {s['trial']}, accuracy {sm['accuracy']:.4f}) has "
           + ", ".join(f"{o} {sm[o]:.4g}" for o in others) + "."]
    out.append(f"The joint network keeps its {jh['rows']}x{jh['cols']} {jh['dataflow']} array "
               f"{j['array_utilization_pct']:.1f}% busy (the sequential network would keep that array "
               f"{s['utilization_on_other_array_pct']:.1f}% busy); the sequential network keeps its own "
               f"{sh['rows']}x{sh['cols']} {sh['dataflow']} array {s['array_utilization_pct']:.1f}% busy "
               f"(the joint network would keep it {j['utilization_on_other_array_pct']:.1f}% busy).")
    fit = lambda d: "fit" if d["weights_fit_filter_sram"] else "do not fit"
    out.append(f"Weights: {jm['size_kb']:.1f} KB at bits {j['bits']} ({fit(j)} its {jh['filter_sram_kb']:g} KB filter "
               f"SRAM) against {sm['size_kb']:.1f} KB at bits {s['bits']} ({fit(s)} its {sh['filter_sram_kb']:g} KB); "
               f"DRAM traffic {j['dram_mb']:.3f} against {s['dram_mb']:.3f} MB per inference.")
    return out
