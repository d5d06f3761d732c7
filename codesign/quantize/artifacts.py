"""The files quantize hands back in DIR, each written via a temporary name and renamed into place.

model.qdq.onnx (its accuracy re-measured from the file), bits.json, pareto.csv/json (every
measured bit map), split.json (which samples calibrated and which selected), quantize.json (the
summary), accelerator.toml (a template target with its config searched), report.html.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from codesign.files import write_bytes, write_text
from codesign.quantize.accuracy import top1
from codesign.quantize.costing import OBJECTIVES, summarize
from codesign.quantize.hardware import accelerator_dict, best_config, searchable, write_accelerator
from codesign.quantize.measure import label, uniform
from hwmodels.errors import CodesignError

FIELDS = ("trial", "phase", "accuracy", "accuracy_drop", "energy_mj", "latency_ms", "size_kb", "feasible", "on_front", "writer", "bits")


def choose(rows: list[dict], objective: str, max_drop: float) -> dict:
    key = OBJECTIVES[objective]
    feasible = [r for r in rows if r["feasible"]]
    if not feasible:
        best = max(rows, key=lambda r: r["accuracy"]) if rows else None
        raise CodesignError(f"no measured bit map stays within --max-accuracy-drop {max_drop}"
                            + (f" (the best drops {best['accuracy_drop']:.2%})" if best else "")
                            + "; allow a larger drop, add wider --bits or more --trials (rerun with --resume)")
    others = [k for k in ("energy_mj", "latency_ms", "size_kb") if k != key]
    # ties on the objective (e.g. systolic latency, which bits do not change) go to the cheaper map
    return min(feasible, key=lambda r: (r[key], *(r[k] if r.get(k) is not None else 0.0 for k in others),
                                        -r["accuracy"], r["trial"] if r["trial"] is not None else 1 << 30))


def mark_front(rows: list[dict], objective: str) -> None:
    """on_front: no other measured map is at least as accurate and at most as costly, one strictly."""
    key = OBJECTIVES[objective]
    for r in rows:
        r["on_front"] = not any(o is not r and o["accuracy"] >= r["accuracy"] and o[key] <= r[key]
                                and (o["accuracy"] > r["accuracy"] or o[key] < r[key]) for o in rows)


def write_all(o, p, rows: list[dict], sens: dict, writer, measurer, seconds: float) -> dict:
    from codesign.report.quantize_report import write_quantize_report

    out = Path(o.out)
    chosen = choose(rows, o.objective, o.max_accuracy_drop)
    mark_front(rows, o.objective)
    costing = p.costing
    ref = 8 if 8 in o.bits else sens["reference"]
    base_bits = uniform(p.layers, ref, ref)
    base_acc = measurer.measure(base_bits).accuracy
    designs = {"float": {}, f"uniform w{ref}a{ref}": base_bits, "chosen": chosen["bits"]}
    costs = {k: costing.estimate(b) for k, b in designs.items()}
    at_default = {k: summarize(c, costing.workload, designs[k]) for k, c in costs.items()}
    summary = {"model": str(o.model), "data": str(o.data), "target": costing.target.name, "cost_model": costing.cost_model_name,
               "objective": o.objective, "max_accuracy_drop": o.max_accuracy_drop, "bits_choices": list(o.bits),
               "float_accuracy": p.float_accuracy, "chance_accuracy": p.chance,
               "selection_samples": int(len(p.data.select_y)), "calibration_samples": int(len(p.data.calib_y)),
               "measured_bit_maps": len(rows), "seconds": seconds, "notes": list(p.notes),
               "baseline": {"bits": f"w{ref}a{ref}", "accuracy": base_acc, **at_default[f"uniform w{ref}a{ref}"]},
               "chosen": {"trial": chosen["trial"], "phase": chosen["phase"], "label": label(chosen["bits"]), "writer": chosen["writer"],
                          "accuracy_search": chosen["accuracy"], **at_default["chosen"],
                          "search_costs": {k: chosen[k] for k in ("energy_mj", "latency_ms", "size_kb")}},
               "float": at_default["float"]}
    accel = None
    if o.search_hardware and searchable(costing.target):
        from hwmodels.targets import target_from_dict

        hw = best_config(costing, chosen["bits"], o.objective)
        accel = accelerator_dict(costing.target, hw, chosen["bits"])
        hw_base = best_config(costing, base_bits, o.objective)
        base_target = target_from_dict(accelerator_dict(costing.target, hw_base, base_bits), "baseline accelerator")
        chosen_target = target_from_dict(accel, "accelerator.toml")
        costs["chosen"] = costing.estimate(chosen["bits"], chosen_target)
        # the headline baseline runs on the same accelerator as the chosen map (what the bits alone
        # save); the baseline on the config searched for it is reported beside it
        costs[f"uniform w{ref}a{ref}"] = costing.estimate(base_bits, chosen_target)
        own = costing.estimate(base_bits, base_target)
        summary["chosen"].update(summarize(costs["chosen"], costing.workload, chosen["bits"]), hardware=hw)
        summary["baseline"].update(summarize(costs[f"uniform w{ref}a{ref}"], costing.workload, base_bits), hardware=hw)
        summary["baseline_own_accelerator"] = {"bits": f"w{ref}a{ref}", **summarize(own, costing.workload, base_bits),
                                               "hardware": hw_base}
        summary["notes"].append(f"the accelerator config is searched for the chosen bits (accelerator.toml); uniform "
                                f"w{ref}a{ref} is costed on it, and also on the config searched for it "
                                "(baseline_own_accelerator); pareto.csv costs are at the template's default config")
    model_bytes, made_by = writer.write(chosen["bits"])
    qdq_path = write_bytes(out / "model.qdq.onnx", model_bytes, "--out")
    qdq_acc = top1(qdq_path.read_bytes(), p.data.select_x, p.data.select_y, p.model.fixed_batch, str(qdq_path))
    summary["chosen"]["accuracy_onnxruntime"] = qdq_acc
    summary["chosen"]["accuracy_drop"] = p.float_accuracy - qdq_acc
    b, c = summary["baseline"], summary["chosen"]
    summary["vs_baseline"] = {f"{k}_ratio": (b[k] / c[k] if b.get(k) and c.get(k) else None)
                              for k in ("energy_mj", "latency_ms", "size_kb")}
    if "baseline_own_accelerator" in summary:
        ob = summary["baseline_own_accelerator"]
        summary["vs_baseline_own_accelerator"] = {f"{k}_ratio": (ob[k] / c[k] if ob.get(k) and c.get(k) else None)
                                                  for k in ("energy_mj", "latency_ms", "size_kb")}
    bits_json = {"default": "fp32", "writer": made_by,
                 "layers": {n: {"weight": w, "activation": a} for n, (w, a) in chosen["bits"].items()},
                 "float_layers": [l.name for l in costing.workload.layers() if l.name not in chosen["bits"]]}
    write_text(out / "bits.json", json.dumps(bits_json, indent=2) + "\n", "--out")
    write_text(out / "split.json", json.dumps(p.data.split_json()) + "\n", "--out")
    write_pareto(out, rows, summary)
    if accel is not None:
        write_accelerator(out / "accelerator.toml", accel)
        summary["accelerator"] = str(out / "accelerator.toml")
    write_text(out / "quantize.json", json.dumps(summary, indent=2, default=float) + "\n", "--out")
    write_quantize_report(out / "report.html", summary, sens, rows, costs, designs)
    return summary


def write_pareto(out: Path, rows: list[dict], summary: dict) -> None:
    flat = [{**r, "bits": {n: f"w{w}a{a}" for n, (w, a) in r["bits"].items()}} for r in rows]
    write_text(out / "pareto.json", json.dumps({"objective": summary["objective"],
                                                "float_accuracy": summary["float_accuracy"],
                                                "max_accuracy_drop": summary["max_accuracy_drop"],
                                                "measured": flat}, indent=2, default=float) + "\n", "--out")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, extrasaction="ignore")
    w.writeheader()
    for r in flat:
        w.writerow({**r, "bits": json.dumps(r["bits"], sort_keys=True)})
    write_text(out / "pareto.csv", buf.getvalue(), "--out")
