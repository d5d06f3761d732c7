"""Random kernels to profile: nn-Meter-style sampling of one-unit ONNX models.

``random_blocks(n, seed, space)`` draws unit configurations (input size, channels, kernel,
stride, groups, activation, residual) from a ``KernelSpace`` -- a convolution with its
BatchNorm, activation and optional residual Add; a pool; a Gemm with its activation; an
elementwise op -- so the per-class regressors see the whole range of shapes, not just the
ones of the networks profiled so far (those come from ``backend.blocks(workloads)``, and are
exact hits later).  Each is a small ONNX model (a ``Block``) that onnxruntime compiles into one
main kernel plus layout reorders, all measured.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from hwmodels.kernel_backend import Block
from hwmodels.ort_skeleton import IR_VERSION, OPSET


@dataclass(frozen=True)
class KernelSpace:
    """Configurations random sampling draws from (defaults: mobile CNNs at 32-224 px)."""

    resolutions: tuple = (2, 3, 4, 6, 7, 8, 12, 14, 16, 24, 28, 32, 48, 56, 64, 96, 112)
    channels: tuple = (3, 8, 12, 16, 24, 32, 40, 48, 64, 72, 96, 128, 144, 192, 256, 384, 512, 768)
    kernels: tuple = (1, 3, 5, 7)
    strides: tuple = (1, 2)
    acts: tuple = ("Relu", "Clip", "Sigmoid", "HardSwish", "")
    kinds: dict = field(default_factory=lambda: {"conv": 4, "depthwise": 3, "pointwise": 4, "residual": 2,
                                                 "pool": 1, "gemm": 1, "elementwise": 1})
    max_macs: int = 250_000_000


# ----------------------------------------------------------------------------------------
def _model(nodes, inputs, outputs, inits):
    from onnx import TensorProto, helper

    g = helper.make_graph(nodes, "block",
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)


def _act_nodes(act: str, x: str, y: str, inits: list, tag: str):
    from onnx import helper, numpy_helper

    if not act:
        return [], x
    if act == "Clip":
        inits += [numpy_helper.from_array(np.array(0, np.float32), f"lo{tag}"),
                  numpy_helper.from_array(np.array(6, np.float32), f"hi{tag}")]
        return [helper.make_node("Clip", [x, f"lo{tag}", f"hi{tag}"], [y])], y
    return [helper.make_node(act, [x], [y])], y


def _conv_block(rng: random.Random, nprng, c, hw, k, kernel, stride, groups, act, residual):
    from onnx import helper, numpy_helper

    inits = [numpy_helper.from_array((nprng.standard_normal((k, c // groups, kernel, kernel)) * 0.1).astype(np.float32), "w"),
             numpy_helper.from_array(np.ones(k, np.float32), "s"), numpy_helper.from_array(np.zeros(k, np.float32), "b"),
             numpy_helper.from_array(np.zeros(k, np.float32), "m"), numpy_helper.from_array(np.ones(k, np.float32), "v")]
    pad = kernel // 2
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[kernel, kernel], strides=[stride, stride],
                              pads=[pad] * 4, group=groups),
             helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["bn"])]
    inputs = [("x", (1, c, hw, hw))]
    cur = "bn"
    if residual:
        p = (hw + 2 * pad - kernel) // stride + 1
        inputs.append(("r", (1, k, p, p)))
        nodes.append(helper.make_node("Add", [cur, "r"], ["sum"]))
        cur = "sum"
    more, cur = _act_nodes(act, cur, "y", inits, "0")
    return _model(nodes + more, inputs, [cur], inits)


def random_blocks(n: int, seed: int = 0, space: KernelSpace | None = None) -> list[Block]:
    """``n`` random one-unit models drawn from ``space`` (deterministic for a seed)."""
    from onnx import helper, numpy_helper

    space = space or KernelSpace()
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    kinds = list(space.kinds)
    weights = [space.kinds[k] for k in kinds]
    out: list[Block] = []
    tries = 0
    while len(out) < n and tries < 20 * n:
        tries += 1
        kind = rng.choices(kinds, weights)[0]
        hw = rng.choice(space.resolutions)
        c = rng.choice(space.channels)
        k = rng.choice(space.channels[1:])
        kernel = rng.choice(space.kernels)
        stride = rng.choice(space.strides)
        act = rng.choice(space.acts)
        if kernel > hw + 2 * (kernel // 2):
            continue
        if kind == "conv":
            if c == 3 and rng.random() < 0.5:
                kernel = rng.choice((3, 5, 7))
            macs = (hw // stride) ** 2 * c * k * kernel * kernel
            if macs > space.max_macs or kernel == 1:
                continue
            m = _conv_block(rng, nprng, c, hw, k, kernel, stride, 1, act, False)
        elif kind == "pointwise":
            if c == 3 or (hw * hw * c * k) > space.max_macs:
                continue
            m = _conv_block(rng, nprng, c, hw, k, 1, 1, 1, act, rng.random() < 0.25 and True)
        elif kind == "depthwise":
            if c == 3 or kernel == 1:
                continue
            m = _conv_block(rng, nprng, c, hw, c, kernel, stride, c, act, False)
        elif kind == "residual":
            if c == 3:
                continue
            kernel = rng.choice((1, 3, 3, 5))
            if (hw * hw * c * c * kernel * kernel) > space.max_macs:
                continue
            m = _conv_block(rng, nprng, c, hw, c, kernel, 1, rng.choice((1, c)) if kernel > 1 else 1,
                            rng.choice(("Relu", "Clip", "")), True)
        elif kind == "pool":
            op = rng.choice(("MaxPool", "AveragePool", "GlobalAveragePool"))
            if hw < 2:
                continue
            if op == "GlobalAveragePool":
                node = helper.make_node(op, ["x"], ["y"])
            else:
                pk = rng.choice((2, 3))
                node = helper.make_node(op, ["x"], ["y"], kernel_shape=[pk, pk], strides=[2, 2],
                                        pads=[pk // 2] * 4 if pk == 3 and op == "MaxPool" else [0] * 4)
            m = _model([node], [("x", (1, c, hw, hw))], ["y"], [])
        elif kind == "gemm":
            fin, fout = rng.choice((16, 32, 64, 128, 256, 512, 768, 1024)), rng.choice((10, 32, 64, 100, 128, 256, 512, 1000))
            inits = [numpy_helper.from_array((nprng.standard_normal((fout, fin)) * 0.1).astype(np.float32), "w"),
                     numpy_helper.from_array(np.zeros(fout, np.float32), "b")]
            nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1)]
            more, cur = _act_nodes(rng.choice(("Relu", "")), "g", "y", inits, "0")
            m = _model(nodes + more, [("x", (1, fin))], [cur], inits)
        else:  # elementwise on a 4-D tensor: binary add or an activation alone
            inits: list = []
            if rng.random() < 0.5:
                m = _model([helper.make_node("Add", ["x", "z"], ["y"])], [("x", (1, c, hw, hw)), ("z", (1, c, hw, hw))], ["y"], [])
            else:
                more, cur = _act_nodes(rng.choice(("Relu", "Clip", "Sigmoid", "HardSwish")), "x", "y", inits, "0")
                m = _model(more, [("x", (1, c, hw, hw))], [cur], inits)
        out.append(Block(f"random:{seed}:{len(out)}", m, "random"))
    return out
