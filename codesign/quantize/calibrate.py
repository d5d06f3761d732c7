"""Activation ranges of every quantizable layer's input, from one onnxruntime pass over the
calibration part with those tensors exposed as extra outputs.

Per tensor we keep its exact min/max and a seeded sample of its values; the scale and zero point
at each width are the asymmetric quantizer with least squared error on that sample (a clipped
range quantizes a 4-bit activation far better than min/max), computed once per width.
"""
from __future__ import annotations


import numpy as np
import onnx
from onnx import helper

from codesign.quantize.model import FloatModel
from codesign.quantize.session import make_session, run_all

SAMPLE = 100_000
CLIP_RATIOS = np.linspace(0.3, 1.0, 15)


class Ranges:
    """Calibrated activation statistics; ``params(tensor, bits)`` -> (scale, zero_point)."""

    def __init__(self, samples: dict[str, np.ndarray], lo: dict[str, float], hi: dict[str, float]):
        self.samples, self.lo, self.hi = samples, lo, hi
        self._cache: dict[tuple[str, int], tuple[float, int]] = {}

    def params(self, tensor: str, bits: int) -> tuple[float, int]:
        key = (tensor, bits)
        if key not in self._cache:
            self._cache[key] = _best_params(self.samples[tensor], self.lo[tensor], self.hi[tensor], bits)
        return self._cache[key]


def _best_params(sample: np.ndarray, lo: float, hi: float, bits: int) -> tuple[float, int]:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    levels = 2 ** bits - 1
    ratios = [1.0] if bits >= 16 else CLIP_RATIOS
    best = None
    for r in ratios:
        l, h = lo * r, hi * r
        scale = max((h - l) / levels, 1e-8)
        zp = int(np.clip(round(-l / scale), 0, levels))
        q = (np.clip(np.rint(sample / scale) + zp, 0, levels) - zp) * scale
        err = float(np.mean((q - sample) ** 2))
        if best is None or err < best[0]:
            best = (err, float(scale), zp)
    return best[1], best[2]


def calibrate(model: FloatModel, x: np.ndarray, seed: int = 0) -> Ranges:
    """One onnxruntime pass with each quantizable layer's input tensor, and every other float tensor a
    node computes (onnxruntime.quantization wants ranges for the outputs it quantizes), as outputs."""
    tensors = sorted({model.node(n).input[0] for n in model.layers} | _float_outputs(model))
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    have = {o.name for o in proto.graph.output}
    for t in tensors:
        if t not in have:
            proto.graph.output.append(helper.make_empty_tensor_value_info(t))
    sess = make_session(proto.SerializeToString(), f"{model.path} (calibration)")
    values = run_all(sess, x, model.fixed_batch, f"{model.path} (calibration)", outputs=tensors, flatten=True)
    rng = np.random.default_rng(seed)
    samples, lo, hi = {}, {}, {}
    for t, v in zip(tensors, values):
        flat = np.asarray(v, dtype=np.float32).ravel()
        if flat.size == 0:
            flat = np.zeros(1, np.float32)
        lo[t], hi[t] = float(flat.min()), float(flat.max())
        samples[t] = flat if flat.size <= SAMPLE else rng.choice(flat, SAMPLE, replace=False)
    return Ranges(samples, lo, hi)


def _float_outputs(model: FloatModel) -> set[str]:
    """Float tensors computed by nodes (not constants): what a static QDQ quantizer may ask ranges for."""
    from onnx import TensorProto, shape_inference

    try:
        inferred = shape_inference.infer_shapes(model.proto, strict_mode=False)
    except Exception:
        return set()
    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
    inits = {i.name for i in model.proto.graph.initializer}
    out = set()
    for node in model.proto.graph.node:
        if node.op_type in ("Constant", "Shape", "Size", "ConstantOfShape"):
            continue
        for o in node.output:
            if o and o not in inits and types.get(o) == TensorProto.FLOAT:
                out.add(o)
    return out
