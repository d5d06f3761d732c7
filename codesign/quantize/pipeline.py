"""The whole ``codesign quantize`` flow, from an ONNX file and data to the files in DIR.

Everything that can be wrong with the inputs is checked before DIR is touched (model, data,
labels, output shape, the float model's own accuracy, the layers asked for), so bad input leaves
nothing half-written; then calibration, sensitivity, the bit search, the chosen design's files.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from hwmodels.errors import CodesignError

CHOICES = (2, 4, 8, 16)
OBJECTIVES = ("energy", "latency", "size")
STUDY_FILE = "study.db"


@dataclass
class QuantizeOptions:
    model: Path
    data: str
    target: str
    out: Path
    bits: tuple[int, ...] = CHOICES
    max_accuracy_drop: float = 0.01
    objective: str = "energy"
    trials: int = 40
    minutes: float = 10.0
    seed: int = 0
    resume: bool = False
    layers: list[str] | None = None        # None: every quantizable layer
    search_hardware: bool = True


Progress = Callable[[str, int, int], None]


@dataclass
class Prepared:
    """Checked inputs: the float model, its data split, its cost, its float accuracy."""

    model: object
    data: object
    costing: object
    layers: list[str]
    float_accuracy: float
    chance: float
    notes: list[str] = field(default_factory=list)


def parse_choices(spec: str) -> tuple[int, ...]:
    try:
        values = tuple(sorted({int(v) for v in spec.split(",") if v.strip()}))
    except ValueError:
        values = ()
    if not values or any(v not in CHOICES for v in values):
        raise CodesignError(f"--bits {spec!r}: give widths from {', '.join(map(str, CHOICES))} separated by commas, e.g. 2,4,8,16")
    return values


def check_options(o: QuantizeOptions) -> None:
    if o.objective not in OBJECTIVES:
        raise CodesignError(f"--objective {o.objective!r}: use one of {', '.join(OBJECTIVES)}")
    if not 0 <= o.max_accuracy_drop < 1:
        raise CodesignError(f"--max-accuracy-drop {o.max_accuracy_drop}: a fraction of top-1 in [0, 1), e.g. 0.01 for one point")
    if o.trials < 1:
        raise CodesignError(f"--trials {o.trials}: give at least 1")
    if not o.minutes > 0:
        raise CodesignError(f"--minutes {o.minutes}: give a positive time budget")
    bad = [b for b in o.bits if b not in CHOICES]
    if bad or not o.bits:
        raise CodesignError(f"--bits: {bad[0] if bad else 'none'} is not one of {', '.join(map(str, CHOICES))}")
    if Path(o.out).exists() and not Path(o.out).is_dir():
        raise CodesignError(f"--out {o.out} exists and is not a folder")
    study = Path(o.out) / STUDY_FILE
    if o.resume and not study.is_file():
        raise CodesignError(f"--resume: {study} not found; run without --resume to start a study there")
    if not o.resume and study.exists():
        raise CodesignError(f"--out {o.out} already holds a quantize study ({study}); pass --resume to continue it "
                            "or choose another --out")


def prepare(o: QuantizeOptions) -> Prepared:
    """Every input check, in memory; nothing is written."""
    import numpy as np

    from codesign.quantize.accuracy import chance_level, top1
    from codesign.quantize.costing import check_layers, make_costing
    from codesign.quantize.dataset import check_labels, load_raw, split
    from codesign.quantize.model import QUANTIZABLE_OPS, check_input, load_float_model

    check_options(o)
    model = load_float_model(o.model)
    x, y = load_raw(o.data)
    where = f"--data {o.data}"
    check_input(model, x, where)
    y = check_labels(np.asarray(y), len(x), model.num_classes, where)
    data = split(x, y, o.seed, str(o.data))
    layers = model.layers
    if o.layers:
        nodes = {n.name: n for n in model.proto.graph.node}
        for name in o.layers:
            if name not in nodes:
                raise CodesignError(f"--layers: {name!r} is not a node of {o.model} (quantizable: {', '.join(layers[:6])}"
                                    f"{', ...' if len(layers) > 6 else ''})")
            if name not in model.weights:
                op = nodes[name].op_type
                why = (f"its op {op} has no quantized form here" if op not in QUANTIZABLE_OPS
                       else "its weight is not a constant initializer")
                raise CodesignError(f"--layers: cannot quantize {name!r}: {why}; quantize handles "
                                    f"{', '.join(QUANTIZABLE_OPS)} with constant weights (leave {name!r} out)")
        layers = [n for n in model.layers if n in set(o.layers)]
    float_acc = top1(model.proto.SerializeToString(), data.select_x, data.select_y, model.fixed_batch,
                     f"{o.model} (float)")
    chance = chance_level(data.select_y)
    if float_acc < chance + 0.2 * (1 - chance):
        raise CodesignError(f"{o.model}: the float model scores {float_acc:.1%} top-1 on --data {o.data} (chance "
                            f"{chance:.1%}); it does not fit this data (wrong model, data or label order?)")
    shape = (model.fixed_batch or 1, *x.shape[1:])
    costing = make_costing(o.model, model.input_name, shape, o.target)
    check_layers(costing, layers, o.model)
    notes = []
    if model.fixed_batch is None:
        notes.append("the model's dynamic batch dimension is costed as 1")
    skipped = [n for n in model.layers if n not in layers]
    if skipped:
        notes.append(f"{len(skipped)} quantizable layer(s) left float by --layers")
    return Prepared(model, data, costing, layers, float_acc, chance, notes)


def run(o: QuantizeOptions, progress: Progress | None = None) -> dict:
    """The flow; returns the summary (also written as DIR/quantize.json)."""
    from codesign.quantize.artifacts import write_all
    from codesign.quantize.bitsearch import (greedy_steps, measured_rows, open_study, run_search, search_choices,
                                             sensitivity_rows)
    from codesign.quantize.calibrate import calibrate
    from codesign.quantize.measure import Measurer, key_of, uniform
    from codesign.quantize.sensitivity import complete, layer_sensitivity
    from codesign.quantize.writer import QDQWriter

    start = time.monotonic()
    deadline = start + o.minutes * 60
    p = prepare(o)
    tick = progress or (lambda *a: None)
    tick("calibrating", 0, 1)
    ranges = calibrate(p.model, p.data.calib_x, o.seed)
    writer = QDQWriter(p.model, ranges)
    measurer = Measurer(p.model, writer, p.data)
    # the only check that needs a written candidate: onnxruntime must run the narrowest map
    narrow = min(o.bits)
    measurer.measure(uniform(p.layers, narrow, narrow))
    _make_out(o.out)
    inputs = {"model": p.model.digest, "data": p.data.digest, "target": o.target, "bits": list(o.bits),
              "objective": o.objective, "max_accuracy_drop": o.max_accuracy_drop, "seed": o.seed, "layers": p.layers}
    study = open_study(Path(o.out) / STUDY_FILE, o.seed, o.resume, inputs)
    sens = study.user_attrs.get("sensitivity")
    if not complete(sens):
        sens = layer_sensitivity(measurer, p.layers, list(o.bits), lambda d, t: tick("sensitivity", d, t),
                                 deadline, sens)
        study.set_user_attr("sensitivity", sens)
        if not complete(sens):
            p.notes.append("--minutes ran out during the sensitivity pass: layers not measured stay at the "
                           "reference width in the guided phase (--resume measures them)")
    study.set_user_attr("float_accuracy", p.float_accuracy)
    base = uniform(p.layers, sens["reference"], sens["reference"])
    steps = greedy_steps(p.layers, list(o.bits), sens, p.costing, o.objective)
    widths = search_choices(list(o.bits), sens, p.float_accuracy, o.max_accuracy_drop)
    if len(widths) < len(o.bits):
        p.notes.append(f"widths above {sens['reference']} bits left out of the search: uniform "
                       f"w{sens['reference']}a{sens['reference']} already stays within the allowed drop")
    run_search(study, p.layers, widths, measurer, p.costing, o.objective, p.float_accuracy,
               o.max_accuracy_drop, base, steps, o.trials, deadline, lambda d, t: tick("search", d, t))
    rows = measured_rows(study, p.layers, p.float_accuracy, o.max_accuracy_drop)
    seen = {key_of(r["bits"]) for r in rows}
    rows += [r for r in sensitivity_rows(sens, p.layers, p.costing, p.float_accuracy, o.max_accuracy_drop,
                                         measurer.writers()) if key_of(r["bits"]) not in seen]
    tick("writing", 0, 1)
    return write_all(o, p, rows, sens, writer, measurer, time.monotonic() - start)


def _make_out(out: Path) -> None:
    """Create DIR (a file in the way or no permission: a one-line error)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CodesignError(f"--out {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CodesignError(f"cannot create --out {out}: {e.strerror or e}") from None
