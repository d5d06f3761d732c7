"""Device models against the devices they name (issue 12).

Table targets: HW-NAS-Bench's FBNet-space latencies (5,000 networks; Li et al., ICLR 2021,
arXiv 2103.10584; the HELP collection, Lee et al., NeurIPS 2021) split once by a seeded
permutation of ``sample`` (seed 2021): 1,000 held-out rows never used in fitting, 4,000 for
fitting.  Each row is rebuilt by ``codesign.spaces.fbnet`` as torch -> ONNX -> Workload and costed
under the protocol that produced its column:

- ``lut``: HW-NAS-Bench measured every distinct block alone and sums their entries
  (``hw_nas_bench_api.fbnet_get_metrics``): the prediction is the sum of the model's estimates of
  the standalone blocks (Raspberry Pi 4, Pixel 3, Eyeriss);
- ``convblocks``: the FPGA column's table gives zero to every Skip block and to the stem,
  header, pooling and classifier entries (a least-squares fit of the 5,000 rows on one-hot
  block indicators has intercept 0.0000): only the ConvBlock entries are summed;
- ``network``: HELP's Xeon columns are whole networks run end to end.

    python benchmarks/bench_devices.py fit        # fit each target on the 4,000 training rows -> benchmarks/out/devices/fitted/
    python benchmarks/bench_devices.py validate [--write-validation]   # held-out figures (and the targets' [validation])
    python benchmarks/bench_devices.py host       # transfer on this machine: FBNet -> random CNNs, NB201-like cells

``host``: three families exported here and measured with onnxruntime (1 thread, interleaved
rounds, the fastest-quarter mean of each round, lowest round kept): 60 FBNet networks (train
rows), 40 ``netgen`` random CNNs (seed 11), 60 NAS-Bench-201-like cell networks
(``codesign.spaces.cells``, seed 201).  The ``host`` target's parameters are fitted on the FBNet
family only; it is then applied zero-shot to the other two, and calibrated there on 20 networks
(5 random splits) and tested on the rest -- next to MACs alone with its best scale.
"""
from __future__ import annotations

import argparse
import datetime as dt
import dataclasses
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from codesign.spaces import cells, fbnet  # noqa: E402
from hwmodels import calibration as cal  # noqa: E402
from hwmodels.registry import get_cost_model  # noqa: E402
from hwmodels.targets import list_targets, load_target  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "hwnas-fbnet" / "fbnet_latency_ms.csv"
DATASHEET = ROOT / "benchmarks" / "datasheet_targets"
OUT = ROOT / "benchmarks" / "out" / "devices"
SPLIT_SEED, HELD_OUT = 2021, 1000
CITE = ("HW-NAS-Bench (Li et al., ICLR 2021, arXiv 2103.10584), FBNet space, CIFAR-100 setting, as collected by "
        "HELP (Lee et al., NeurIPS 2021)")


@dataclass(frozen=True)
class Device:
    target: str
    column: str
    protocol: str      # lut | convblocks | network


DEVICES = (
    Device("raspberry-pi-4", "raspi4", "lut"),
    Device("pixel3", "pixel3", "lut"),
    Device("eyeriss", "eyeriss", "lut"),
    Device("fpga-zc706", "fpga", "convblocks"),
    Device("xeon-gold-6226", "gold_6226", "network"),
)


def load_table(path: Path = DATA):
    import pandas as pd

    if not path.is_file():
        sys.exit(f"data not found: {path} (the HW-NAS-Bench FBNet table, see ../shared/data/hwnas-fbnet/README.md)")
    return pd.read_csv(path)


def split(df) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the training and the held-out rows (seeded permutation of ``sample``)."""
    ids = df["sample"].to_numpy()
    perm = np.random.default_rng(SPLIT_SEED).permutation(np.sort(ids))
    held = set(perm[:HELD_OUT].tolist())
    pos = np.arange(len(df))
    mask = np.array([s in held for s in ids])
    return pos[~mask], pos[mask]


def network_workload(df, i: int):
    """Whole-network Workload of row ``i`` (cached as JSON under benchmarks/out: exports take ~0.6 s each;
    a cache file that does not decode is rebuilt, and nothing in it can run code)."""
    cache = OUT / "networks" / f"{int(df['sample'].iloc[i]):04d}.json"
    cache.with_suffix(".pkl").unlink(missing_ok=True)          # an older version's pickle: never read
    if cache.is_file():
        try:
            return workload_from_json(cache.read_text())
        except Exception:                                       # damaged or from another version: rebuild
            pass
    wl = fbnet.network_workload(df["ops"].iloc[i], name=f"fbnet_{int(df['sample'].iloc[i])}")
    try:
        text = workload_to_json(wl)
    except TypeError:                                           # something JSON cannot hold: just don't cache
        return wl
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(cache)
    return wl


def _dataclasses():
    from hwmodels.workload import ConvDims, GemmDims, Layer

    return {c.__name__: c for c in (ConvDims, GemmDims, Layer)}


def _enc(v):
    """JSON-able form of a Workload's values: tuples and the workload dataclasses tagged; TypeError otherwise."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (np.integer, np.floating, np.bool_)):
        return v.item()
    if isinstance(v, tuple):
        return {"__tuple__": [_enc(x) for x in v]}
    if isinstance(v, list):
        return [_enc(x) for x in v]
    if isinstance(v, dict):
        if not all(isinstance(k, str) for k in v) or any(k.startswith("__") for k in v):
            raise TypeError("dict keys must be plain strings")
        return {k: _enc(x) for k, x in v.items()}
    if dataclasses.is_dataclass(v) and type(v).__name__ in _dataclasses() and type(v) is _dataclasses()[type(v).__name__]:
        return {"__dataclass__": type(v).__name__,
                "fields": {f.name: _enc(getattr(v, f.name)) for f in dataclasses.fields(v)}}
    raise TypeError(f"cannot store a {type(v).__name__} in the workload cache")


def _dec(v, classes):
    if isinstance(v, list):
        return [_dec(x, classes) for x in v]
    if isinstance(v, dict):
        if set(v) == {"__tuple__"}:
            return tuple(_dec(x, classes) for x in v["__tuple__"])
        if set(v) == {"__dataclass__", "fields"}:
            return classes[v["__dataclass__"]](**{k: _dec(x, classes) for k, x in v["fields"].items()})
        return {k: _dec(x, classes) for k, x in v.items()}
    return v


def workload_to_json(wl) -> str:
    attrs = {k: v for k, v in vars(wl).items() if k != "graph"}
    return json.dumps({"format": "bench_devices.workload", "version": 1, "attrs": _enc(attrs),
                       "nodes": [[n, _enc(d)] for n, d in wl.graph.nodes(data=True)],
                       "edges": [[u, v, _enc(d)] for u, v, d in wl.graph.edges(data=True)]}, allow_nan=False)


def workload_from_json(text: str):
    from hwmodels.workload import Workload

    doc, classes = json.loads(text), _dataclasses()
    if doc.get("format") != "bench_devices.workload" or doc.get("version") != 1:
        raise ValueError("not a cached workload of this version")
    attrs = _dec(doc["attrs"], classes)
    wl = Workload(attrs.pop("name"))
    for k, v in attrs.items():
        if k not in vars(wl):
            raise ValueError(f"unknown workload attribute {k!r}")
        setattr(wl, k, v)
    for n, d in doc["nodes"]:
        wl.graph.add_node(n, **_dec(d, classes))
    for u, v, d in doc["edges"]:
        wl.graph.add_edge(u, v, **_dec(d, classes))
    return wl


def sample_of(df, i: int, protocol: str):
    ops = df["ops"].iloc[i]
    if protocol == "network":
        return network_workload(df, i)
    entries = fbnet.lut_entries(ops)
    wls = [fbnet.entry_workload(e) for e in entries]
    if protocol == "convblocks":
        return [w for w, e in zip(wls, entries) if e.kind == "ConvBlock"]
    return wls


def macs_of(sample) -> float:
    return float(sum(w.macs for w in (sample if isinstance(sample, list) else [sample])))


def weight_bytes_of(sample) -> float:
    return float(sum(w.weight_bytes for w in (sample if isinstance(sample, list) else [sample])))


def size_ranges(samples) -> dict:
    """[smallest, largest] MACs (millions) and weights (KB) of the networks a target is checked on:
    `analyze` says when a network lies outside them."""
    macs = [macs_of(s) / 1e6 for s in samples]
    kb = [weight_bytes_of(s) / 1024 for s in samples]
    return {"macs_m": [min(macs), max(macs)], "weight_kb": [min(kb), max(kb)]}


def predict_ms(target, samples) -> np.ndarray:
    model = get_cost_model(target.cost_model or "roofline")
    memo: dict[int, float] = {}

    def one(wl):
        if id(wl) not in memo:
            memo[id(wl)] = model.estimate(wl, target).latency_s * 1e3
        return memo[id(wl)]

    return np.array([sum(one(w) for w in s) if isinstance(s, list) else one(s) for s in samples])


def metrics(pred: np.ndarray, meas: np.ndarray) -> dict:
    err = np.abs(pred - meas) / meas
    return {"spearman": float(spearmanr(pred, meas).statistic), "median_error_pct": float(np.median(err) * 100),
            "p90_error_pct": float(np.percentile(err, 90) * 100), "within_10_pct": float((err <= 0.10).mean() * 100)}


def macs_metrics(macs: np.ndarray, meas: np.ndarray, fit_idx=None) -> dict:
    """MACs alone, with the one scale that fits ``fit_idx`` best (all rows: an oracle)."""
    idx = slice(None) if fit_idx is None else fit_idx
    scale = float(np.median(meas[idx] / macs[idx]))
    return metrics(macs * scale, meas)


def fmt(m: dict) -> str:
    return f"{m['spearman']:.3f} | {m['median_error_pct']:.1f}% | {m['p90_error_pct']:.1f}% | {m['within_10_pct']:.0f}%"


def table_samples(df, dev: Device, rows, limit: int | None = None):
    rows = list(rows)[: limit or None]
    return rows, [sample_of(df, i, dev.protocol) for i in rows]


def cmd_fit(args) -> None:
    import tomli_w

    df = load_table(Path(args.data))
    train, _ = split(df)
    for dev in DEVICES:
        if args.targets and dev.target not in args.targets:
            continue
        t0 = time.time()
        limit = args.network_train if dev.protocol == "network" else None
        rows, samples = table_samples(df, dev, train, limit)
        start = load_target(args.start / f"{dev.target}.toml" if args.start else dev.target)
        res = cal.calibrate(start, samples, df[dev.column].to_numpy()[rows], source=f"{CITE}, column {dev.column}, "
                            f"{len(rows)} training rows", prior_weight=args.prior)
        out = OUT / "fitted" / f"{dev.target}.toml"
        out.parent.mkdir(parents=True, exist_ok=True)
        data = res.target.model_dump(exclude_none=True)
        out.write_text(tomli_w.dumps(data))
        print(f"{dev.target}: {len(rows)} rows, fit error {res.fit_error_pct:.2f}% ({time.time() - t0:.0f} s) -> {out}")
        for k, v in res.params.items():
            print(f"    {k} = {v:.6g}")


def cmd_validate(args) -> None:
    df = load_table(Path(args.data))
    train, held = split(df)
    today = dt.date.today().isoformat()
    print(f"\n`python benchmarks/bench_devices.py validate` -- {today}; held-out rows: {len(held)} of {len(df)} "
          f"(seeded permutation of `sample`, seed {SPLIT_SEED}); 20-sample calibrations: mean of 5 draws from the training rows\n")
    print("| target (column, protocol) | model | held-out nets | Spearman | median err | p90 err | within ±10% |")
    print("|---|---|---:|---:|---:|---:|---:|")
    results, ranges = {}, None
    for dev in DEVICES:
        if args.targets and dev.target not in args.targets:
            continue
        limit = args.network_held_out if dev.protocol == "network" else None
        rows, samples = table_samples(df, dev, held, limit)
        meas = df[dev.column].to_numpy()[rows]
        macs = np.array([macs_of(s) for s in samples])
        shipped = load_target(args.source / f"{dev.target}.toml" if args.source else dev.target)
        datasheet = load_target(DATASHEET / f"{dev.target}.toml")
        train_rows = list(train[: args.network_train]) if dev.protocol == "network" else list(train)
        r = {"MACs alone (oracle scale)": macs_metrics(macs, meas),
             f"datasheet roofline": metrics(predict_ms(datasheet, samples), meas)}
        for label, start in ((f"datasheet roofline + calibrate 20", datasheet),
                             (f"{shipped.cost_model} + calibrate 20", shipped)):
            runs = []
            for seed in range(5):
                pick = np.random.default_rng(seed).choice(train_rows, 20, replace=False)
                s20 = [sample_of(df, i, dev.protocol) for i in pick]
                c = cal.calibrate(start, s20, df[dev.column].to_numpy()[pick])
                runs.append(metrics(predict_ms(c.target, samples), meas))
            r[label] = {k: float(np.mean([x[k] for x in runs])) for k in runs[0]}
        r[f"{shipped.cost_model} (shipped, fitted on training rows)"] = metrics(predict_ms(shipped, samples), meas)
        results[dev.target] = {"column": dev.column, "protocol": dev.protocol, "networks": len(rows), "rows": r}
        for label, m in r.items():
            print(f"| `{dev.target}` ({dev.column}, {dev.protocol}) | {label} | {len(rows)} | {fmt(m)} |")
        if args.write_validation and not args.source:
            ranges = ranges or held_out_ranges(df, held)      # the same rows for every device: once
            write_validation(dev, shipped, r, len(rows), today, ranges)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "validate.json").write_text(json.dumps(results, indent=1))


def held_out_ranges(df, held) -> dict:
    """Size ranges of the held-out rows, each as the sum of all its table entries (stem to classifier;
    the whole network's MACs and weights, without ~0.6 s of export per row)."""
    return size_ranges([sample_of(df, i, "lut") for i in held])


def cmd_ranges(args) -> None:
    """Write only the size ranges into the bundled targets' [validation] tables (no refit)."""
    df = load_table(Path(args.data))
    _, held = split(df)
    fbnet_ranges = held_out_ranges(df, held)
    for dev in DEVICES:
        if not args.targets or dev.target in args.targets:
            write_ranges(list_targets()[dev.target], fbnet_ranges)
            print(dev.target, fbnet_ranges)
    if not args.targets or "host" in args.targets:
        from codesign.frontends.onnx_frontend import load_onnx

        wls = [load_onnx(p) for name, p in host_networks(df, OUT / "host") if name != "fbnet"]
        write_ranges(list_targets()["host"], size_ranges(wls))
        print("host", size_ranges(wls))


VALIDATION_BLOCK = r"^\[validation\]\n(?:(?!^\[).*\n?)*"     # the table, up to the next one


def range_lines(ranges: dict) -> str:
    return (f"macs_m = [{ranges['macs_m'][0]:.2f}, {ranges['macs_m'][1]:.2f}]   # smallest, largest of those networks\n"
            f"weight_kb = [{ranges['weight_kb'][0]:.1f}, {ranges['weight_kb'][1]:.1f}]\n")


def write_ranges(path: Path, ranges: dict) -> None:
    """Put (or replace) macs_m and weight_kb in the [validation] table of a target file."""
    text = path.read_text()
    block = re.search(VALIDATION_BLOCK, text, flags=re.M)
    if block is None:
        raise SystemExit(f"{path}: no [validation] table to add size ranges to")
    kept = "".join(l for l in block.group(0).strip("\n").splitlines(keepends=True)
                   if not re.match(r"(macs_m|weight_kb) = ", l)).rstrip("\n") + "\n"
    tail = text[block.end():].lstrip("\n")
    path.write_text(text[:block.start()] + kept + range_lines(ranges) + ("\n" + tail if tail else ""))
    load_target(path)       # still a valid target


def write_validation(dev: Device, shipped, r: dict, n: int, today: str, ranges: dict | None = None) -> None:
    """Rewrite the [validation] table of the bundled target file with the held-out figures."""
    m = r[f"{shipped.cost_model} (shipped, fitted on training rows)"]
    protocol = {"lut": "each row as the sum of its standalone blocks, as the table was measured",
                "convblocks": "each row as the sum of its ConvBlock entries (the table's FPGA column gives "
                              "Skip, stem, header, pooling and classifier zero)",
                "network": "each row as one whole network"}[dev.protocol]
    cite = CITE if dev.protocol != "network" else (
        "FBNet space of HW-NAS-Bench (Li et al., ICLR 2021, arXiv 2103.10584), CIFAR-100 setting, latencies measured "
        "end to end by HELP (Lee et al., NeurIPS 2021)")
    data = (f"{cite}, column {dev.column}: {n} held-out rows (seeded permutation of sample, seed {SPLIT_SEED}; "
            f"never used in fitting), {protocol}")
    write_validation_table(list_targets()[dev.target], data, m, n, r["MACs alone (oracle scale)"]["spearman"],
                           shipped.cost_model, today, "python benchmarks/bench_devices.py validate --write-validation",
                           ["Li et al., HW-NAS-Bench, ICLR 2021, arXiv 2103.10584",
                            "Lee et al., HELP: Hardware-Adaptive Efficient Latency Prediction, NeurIPS 2021 (github HayeonLee/HELP)"],
                           "FBNet-space (HW-NAS-Bench)", ranges)


def write_validation_table(path: Path, data: str, m: dict, n: int, macs_rho: float, cost_model: str, today: str,
                           command: str, sources: list[str], family: str, ranges: dict | None = None) -> None:
    block = (
        "[validation]\n"
        f'data = "{data}"\n'
        f'family = "{family}"\n'
        f"networks = {n}\n"
        f"spearman = {m['spearman']:.4f}\n"
        f"median_error_pct = {m['median_error_pct']:.2f}\n"
        f"p90_error_pct = {m['p90_error_pct']:.2f}\n"
        f"within_10_pct = {m['within_10_pct']:.1f}\n"
        f"macs_spearman = {macs_rho:.4f}\n"
        f'cost_model = "{cost_model}"\n'
        f'date = "{today}"\n'
        f'command = "{command}"\n'
        "sources = [" + ", ".join(f'"{x}"' for x in sources) + "]\n"
        + (range_lines(ranges) if ranges else "")
    )
    text = path.read_text()
    if re.search(VALIDATION_BLOCK, text, flags=re.M):
        text = re.sub(VALIDATION_BLOCK, lambda _: block, text, flags=re.M)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)
    load_target(path)       # still a valid target


# --- host transfer ------------------------------------------------------------------------------

def host_networks(df, out: Path):
    import netgen

    train, _ = split(df)
    items = []
    d = out / "fbnet"
    d.mkdir(parents=True, exist_ok=True)
    for i in np.random.default_rng(1).choice(train, 60, replace=False):
        p = d / f"fbnet_{int(df['sample'].iloc[i]):04d}.onnx"
        if not p.exists():
            fbnet.export_network(df["ops"].iloc[i], p)
        items.append(("fbnet", p))
    items += [("netgen", p) for p in netgen.generate(40, 11, out / "netgen")]
    d = out / "cells"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(201)
    for j in range(60):
        arch = cells.sample(rng)
        p = d / f"cell_{j:03d}.onnx"
        if not p.exists() or (d / f"cell_{j:03d}.txt").read_text() != cells.arch_str(arch):
            cells.export(arch, p)
            (d / f"cell_{j:03d}.txt").write_text(cells.arch_str(arch))
        items.append(("cells", p))
    return items


def measure(items, rounds: int, cache: Path) -> dict[str, float]:
    from hwmodels.ort_runner import measure_onnx_latency_ms

    if cache.is_file():
        data = json.loads(cache.read_text())
        if data.get("rounds", 0) >= rounds and {str(p) for _, p in items} <= set(data["ms"]):
            return data["ms"]
    best = {str(p): float("inf") for _, p in items}
    for r in range(rounds):       # interleaved rounds: load drifting during the run hits every network alike
        for _, p in items:
            m = measure_onnx_latency_ms(p, threads=1, repeats=10, warmup=2, min_time_s=0.05)
            best[str(p)] = min(best[str(p)], m["fast_ms"])
        print(f"round {r + 1}/{rounds} measured", file=sys.stderr)
    cache.write_text(json.dumps({"rounds": rounds, "date": dt.date.today().isoformat(), "ms": best}, indent=1))
    return best


def cmd_host(args) -> None:
    from codesign.frontends.onnx_frontend import load_onnx

    df = load_table(Path(args.data))
    out = OUT / "host"
    items = host_networks(df, out)
    ms = measure(items, args.rounds, out / "measured.json")
    fam: dict[str, list] = {}
    for name, p in items:
        fam.setdefault(name, []).append((load_onnx(p), ms[str(p)]))
    host = load_target(args.target)
    fb = fam["fbnet"]
    fitted = cal.calibrate(host, [w for w, _ in fb], [m for _, m in fb], prior_weight=args.prior).target
    if args.fit_out:
        import tomli_w

        Path(args.fit_out).write_text(tomli_w.dumps(fitted.model_dump(exclude_none=True)))
    # the bundled host file is that fit (rendered to 4 significant digits, with comments): report the file itself
    fitted = load_target("host")
    roof = load_target(DATASHEET / "host.toml").model_copy(update={"cost_model": "roofline"})
    roof_fb = cal.calibrate(roof, [w for w, _ in fb], [m for _, m in fb]).target
    print(f"\n`python benchmarks/bench_devices.py host --rounds {args.rounds}` -- {dt.date.today()}; "
          f"onnxruntime 1 thread, this machine; parameters fitted on the {len(fb)} FBNet networks only\n")
    print("| family (nets, ms range) | model | Spearman | median err | p90 err | within ±10% |")
    print("|---|---|---:|---:|---:|---:|")
    report = {}
    for name, rows in fam.items():
        wls = [w for w, _ in rows]
        y = np.array([m for _, m in rows])
        macs = np.array([w.macs for w in wls], float)
        head = f"{name} ({len(rows)}, {y.min():.2f}-{y.max():.2f})"
        r = {"MACs alone (oracle scale)": macs_metrics(macs, y),
             "roofline (datasheet host)": metrics(predict_ms(roof, wls), y),
             "roofline fitted on FBNet": metrics(predict_ms(roof_fb, wls), y),
             f"{fitted.cost_model} fitted on FBNet (zero-shot here)" if name != "fbnet" else
             f"{fitted.cost_model} fitted on FBNet (in-sample)": metrics(predict_ms(fitted, wls), y)}
        if name != "fbnet":
            residual_runs = []
            for label, start in (("roofline fitted on FBNet + calibrate 20", roof_fb),
                                 (f"{fitted.cost_model} fitted on FBNet + calibrate 20", fitted),
                                 ("MACs alone, scale from the 20", None)):
                runs = []
                for seed in range(5):
                    idx = np.random.default_rng(seed).permutation(len(rows))
                    a, b = idx[:20], idx[20:]
                    if start is None:
                        runs.append(metrics(macs[b] * np.median(y[a] / macs[a]), y[b]))
                        continue
                    c = cal.calibrate(start, [wls[i] for i in a], y[a]).target
                    runs.append(metrics(predict_ms(c, [wls[i] for i in b]), y[b]))
                    if start is fitted:
                        residual_runs.append(metrics(residual_corrected(c, [wls[i] for i in a], y[a], [wls[i] for i in b]), y[b]))
                r[label + f" (tested on the other {len(rows) - 20})"] = {k: float(np.mean([x[k] for x in runs])) for k in runs[0]}
            r[f"{fitted.cost_model} + calibrate 20 + ridge residual on kernel-class time shares (experiment, not shipped)"] = \
                {k: float(np.mean([x[k] for x in residual_runs])) for k in residual_runs[0]}
        report[name] = r
        for label, m in r.items():
            print(f"| {head} | {label} | {fmt(m)} |")
    (out / "transfer.json").write_text(json.dumps(report, indent=1))
    if args.write_validation:
        others = [(w, m) for name, rows in fam.items() if name != "fbnet" for w, m in rows]
        y = np.array([m for _, m in others])
        wls = [w for w, _ in others]
        m = metrics(predict_ms(fitted, wls), y)
        macs_rho = float(spearmanr(np.array([w.macs for w in wls], float), y).statistic)
        data = (f"{len(others)} networks of two families the fit never saw, measured on this machine kind with "
                f"onnxruntime (1 thread): {len(fam['netgen'])} benchmarks/netgen.py random CNNs (seed 11) and "
                f"{len(fam['cells'])} NAS-Bench-201-like cell networks (codesign.spaces.cells, seed 201); parameters "
                f"fitted on {len(fb)} FBNet-space networks only")
        write_validation_table(list_targets()["host"], data, m, len(others), macs_rho, fitted.cost_model,
                               dt.date.today().isoformat(), f"python benchmarks/bench_devices.py host --rounds {args.rounds} "
                               "--write-validation", ["Dong & Yang, NAS-Bench-201, ICLR 2020 (the cell space)"],
                               "random-CNN and NAS-Bench-201-like", size_ranges(wls))


KERNEL_CLASSES = ("conv", "pointwise_conv", "depthwise_conv", "grouped_conv", "matmul", "pool", "elementwise",
                  "data_movement")


def residual_corrected(target, fit_wls, fit_ms, test_wls) -> np.ndarray:
    """A learned residual on top of the calibrated model (tried, not shipped): ridge regression of
    log(measured / predicted) on the share of predicted time per kernel class and log latency."""
    from sklearn.linear_model import Ridge

    model = get_cost_model(target.cost_model)

    def feats(wls):
        rows = []
        for w in wls:
            c = model.estimate(w, target)
            rows.append([sum(l.latency_s for l in c.layers if l.op_class == k) / c.latency_s for k in KERNEL_CLASSES]
                        + [np.log(c.latency_s * 1e3)])
        return np.array(rows)

    pa, pb = predict_ms(target, fit_wls), predict_ms(target, test_wls)
    ridge = Ridge(alpha=1.0).fit(feats(fit_wls), np.log(np.asarray(fit_ms) / pa))
    return pb * np.exp(ridge.predict(feats(test_wls)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA))
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit")
    f.add_argument("--targets", nargs="*")
    f.add_argument("--start", type=Path, help="folder of target files to start from (default: the bundled ones)")
    f.add_argument("--prior", type=float, default=0.0, help="prior weight (0: the 4,000 rows decide)")
    f.add_argument("--network-train", type=int, default=400, help="training rows for whole-network columns")
    v = sub.add_parser("validate")
    v.add_argument("--targets", nargs="*")
    v.add_argument("--write-validation", action="store_true")
    v.add_argument("--source", type=Path, help="validate the target files in this folder instead of the bundled ones "
                   "(e.g. benchmarks/out/devices/fitted after `fit --start`)")
    v.add_argument("--network-held-out", type=int, default=HELD_OUT)
    v.add_argument("--network-train", type=int, default=400)
    h = sub.add_parser("host")
    h.add_argument("--rounds", type=int, default=5)
    h.add_argument("--target", default=str(DATASHEET / "host.toml"), help="starting point of the FBNet fit")
    h.add_argument("--prior", type=float, default=cal.PRIOR_WEIGHT)
    h.add_argument("--fit-out", help="write the FBNet-fitted host target here")
    h.add_argument("--write-validation", action="store_true", help="write the zero-shot figures into targets/host.toml")
    g = sub.add_parser("ranges", help="write only the size ranges of the validation networks into the targets")
    g.add_argument("--targets", nargs="*")
    args = ap.parse_args()
    {"fit": cmd_fit, "validate": cmd_validate, "host": cmd_host, "ranges": cmd_ranges}[args.cmd](args)


if __name__ == "__main__":
    main()
