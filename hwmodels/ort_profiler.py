"""onnxruntime kernels: what runs, how long each node takes, and which layers it covers.

The unit of measurement is the *runtime kernel*: a node of the graph onnxruntime actually
executes after its graph optimizations (ORT_ENABLE_ALL by default).  Those fuse
Conv+BatchNorm+activation (+residual Add) into one node, turn convolutions and pools into
blocked-layout ``com.microsoft.nchwc`` kernels with ``ReorderInput``/``ReorderOutput`` at
the layout boundaries, fuse Gemm+activation into ``FusedGemm``, and so on.  Rather than
re-implementing those rules, the fusion is taken from onnxruntime itself:

1. ``skeleton_model(layers)`` rebuilds an ONNX graph from Workload layers (weights are
   synthesised from the recorded shapes, so a Workload from any frontend works);
2. ``optimized_kernels(model)`` lets onnxruntime optimize it (no inference is run) and
   lists each runtime kernel with its signature (op, shapes, dtype, attributes);
3. ``map_kernels_to_layers`` maps every kernel back to the workload layers it covers: a
   fused node is named after (or outputs) the last original tensor it produces, and every
   layer whose output vanished is folded forward into its consumer's kernel;
4. ``profile_model`` runs a model with onnxruntime's built-in profiler and returns each
   kernel's robust per-call time (warm-up runs dropped, 3-MAD outliers rejected).

A kernel's signature is computed the same way when it is profiled inside a one-block model
and when it is predicted inside a whole network, so a stored measurement is an exact hit
wherever the same kernel occurs.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwmodels.workload import Layer, Workload

OPSET = 17
IR_VERSION = 8
_ACT_CODES = {"": 0, "Relu": 1, "Clip": 2, "Sigmoid": 3, "HardSigmoid": 4, "HardSwish": 5, "Tanh": 6, "LeakyRelu": 7}

# ops rebuilt from a Layer with only their activation inputs (attributes copied)
_PASS_THROUGH = {
    "Relu", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid", "LeakyRelu", "Elu", "Selu", "Softplus", "Softsign",
    "Erf", "Exp", "Log", "Sqrt", "Neg", "Abs", "Reciprocal", "Floor", "Ceil", "Round", "Sign",
    "Softmax", "LogSoftmax", "Transpose", "Flatten", "MaxPool", "AveragePool", "GlobalAveragePool",
    "GlobalMaxPool", "LpNormalization", "LRN", "Identity", "Dropout", "Concat", "Mish", "Gelu", "ReduceMean",
    "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceLogSumExp", "DepthToSpace", "SpaceToDepth",
    "Sum", "Mean", "Max", "Min", "PRelu", "Where", "Not", "And", "Or", "Equal", "Less", "Greater",
}
_BINARY = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu", "Equal", "Less", "Greater"}
_DROP_ATTRS = {"Dropout": {"seed"}}
# attribute values equal to the ONNX default are dropped from signatures (writers differ in
# whether they spell them out)
_DEFAULT_ATTRS = {"transA": 0, "transB": 0, "alpha": 1.0, "beta": 1.0, "auto_pad": "NOTSET", "ceil_mode": 0,
                  "storage_order": 0, "channels_last": 0, "keepdims": 1, "allowzero": 0, "group": 1,
                  "dilations": [1, 1], "strides": [1, 1], "count_include_pad": 0}


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


# ---------------------------------------------------------------------------------------
# 1. Workload layers -> ONNX skeleton
# ---------------------------------------------------------------------------------------
class _Builder:
    def __init__(self, seed: int = 0):
        self.inits = []
        self.rng = np.random.default_rng(seed)
        self.count = 0

    def const(self, arr: np.ndarray, hint: str) -> str:
        from onnx import numpy_helper

        self.count += 1
        name = f"__c{self.count}_{hint}"
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def weight(self, shape, hint: str) -> str:
        # values do not change dense fp32 kernel times; a constant is fast to build for big layers
        return self.const(np.full(shape, 0.01, np.float32), hint)


def _schema_attrs(op: str, attrs: dict) -> dict:
    """Keep only the attributes the op has at ``OPSET`` (models from older opsets carry
    attributes such as BatchNormalization's ``spatial`` that later opsets removed)."""
    from onnx import defs

    try:
        allowed = set(defs.get_schema(op, OPSET).attributes)
    except Exception:
        return attrs
    return {k: v for k, v in attrs.items() if k in allowed or k in ("min", "max", "axes")}


def _layer_node(layer: Layer, b: _Builder):
    """ONNX node(s) for one layer, or None when the layer cannot be rebuilt from its record."""
    from onnx import helper

    op, attrs = layer.op, dict(layer.attrs)
    for k in _DROP_ATTRS.get(op, ()):
        attrs.pop(k, None)
    if op == "Dropout":      # inference: an identity (old-opset Dropout attributes are invalid at opset 17)
        op, attrs = "Identity", {}
    attrs = _schema_attrs(op, attrs)
    ins = list(layer.inputs)
    outs = list(layer.outputs)
    if not outs or any(not s for s in layer.output_shapes[:1]):
        return None
    if any(isinstance(v, str) and v.startswith("<") for v in attrs.values()):
        return None
    name = layer.name
    if op == "Conv":
        c = layer.conv
        if c is None or len(ins) != 1:
            return None
        wshape = (c.k, c.c // c.groups, c.r, c.s) if len(layer.input_shapes[0]) == 4 else (c.k, c.c // c.groups, c.s)
        w_elems = _numel(wshape)
        args = [ins[0], b.weight(wshape, "w")]
        if layer.params > w_elems:
            args.append(b.weight((c.k,), "b"))
        return [helper.make_node("Conv", args, outs[:1], name=name, **attrs)]
    if op == "BatchNormalization":
        ch = layer.input_shapes[0][1]
        consts = [b.const(np.ones(ch, np.float32), "s"), b.const(np.zeros(ch, np.float32), "b"),
                  b.const(np.zeros(ch, np.float32), "m"), b.const(np.ones(ch, np.float32), "v")]
        attrs.pop("training_mode", None)
        return [helper.make_node(op, [ins[0]] + consts, outs[:1], name=name, **attrs)]
    if op == "Gemm":
        if len(ins) >= 2:
            return [helper.make_node(op, ins, outs[:1], name=name, **attrs)]
        g = layer.gemm
        if g is None:
            return None
        bshape = (g.n, g.k) if attrs.get("transB", 0) else (g.k, g.n)
        args = [ins[0], b.weight(bshape, "w")]
        if layer.params > g.n * g.k:
            args.append(b.weight((g.n,), "b"))
        return [helper.make_node(op, args, outs[:1], name=name, **attrs)]
    if op == "MatMul":
        if len(ins) == 2:
            return [helper.make_node(op, ins, outs[:1], name=name)]
        if len(ins) != 1 or not layer.input_shapes or len(layer.input_shapes[0]) < 1:
            return None
        kdim, ndim = layer.input_shapes[0][-1], layer.output_shapes[0][-1]
        return [helper.make_node(op, [ins[0], b.weight((kdim, ndim), "w")], outs[:1], name=name)]
    if op == "Clip":
        lo, hi = attrs.pop("min", 0.0), attrs.pop("max", 6.0)
        return [helper.make_node(op, [ins[0], b.const(np.array(lo, np.float32), "lo"),
                                      b.const(np.array(hi, np.float32), "hi")], outs[:1], name=name)]
    if op == "Reshape":
        shape = np.array(layer.output_shapes[0], dtype=np.int64)
        return [helper.make_node(op, [ins[0], b.const(shape, "shape")], outs[:1], name=name)]
    if op in ("Squeeze", "Unsqueeze"):
        shape = np.array(layer.output_shapes[0], dtype=np.int64)
        return [helper.make_node("Reshape", [ins[0], b.const(shape, "shape")], outs[:1], name=name)]
    if op == "ReduceSum":
        axes = attrs.pop("axes", None)
        if axes is None:
            i, o = layer.input_shapes[0], layer.output_shapes[0]
            if len(i) != len(o):
                return None
            axes = [d for d in range(len(i)) if i[d] != o[d]]
        return [helper.make_node(op, [ins[0], b.const(np.array(axes, np.int64), "axes")], outs[:1], name=name, **attrs)]
    if op in _BINARY and len(ins) == 1:
        out = layer.output_shapes[0]
        p = max(layer.params, 1)
        if p == 1:
            cshape: tuple = ()
        elif out and p == out[-1]:
            cshape = (p,)
        elif len(out) == 4 and p == out[1]:
            cshape = (p, 1, 1)
        elif p == _numel(out):
            cshape = tuple(out)
        else:
            cshape = ()
        return [helper.make_node(op, [ins[0], b.weight(cshape, "k")], outs[:1], name=name)]
    if op in _PASS_THROUGH or op in _BINARY:
        if op in ("ReduceSum",):
            return None
        return [helper.make_node(op, ins, outs[:1], name=name, **attrs)]
    return None


def skeleton_model(layers: list[Layer], seed: int = 0):
    """An ONNX ModelProto computing ``layers`` (weights synthesised from their shapes).

    Returns ``(model, standins)``: layers that cannot be rebuilt become graph inputs (their
    outputs) so the rest of the graph keeps its fusion opportunities; ``standins`` lists them.
    """
    from onnx import TensorProto, helper

    b = _Builder(seed)
    nodes, standins = [], []
    produced: dict[str, tuple] = {}
    shapes: dict[str, tuple] = {}
    for l in layers:
        for t, s in zip(l.inputs, l.input_shapes):
            shapes.setdefault(t, tuple(s))
        for t, s in zip(l.outputs, l.output_shapes):
            shapes[t] = tuple(s)
    for l in layers:
        made = _layer_node(l, b) if l.modelled or l.op in _PASS_THROUGH else None
        if made is None:
            standins.append(l)
            continue
        nodes.extend(made)
        for t in l.outputs[:1]:
            produced[t] = shapes.get(t, ())
    consumed = {i for n in nodes for i in n.input}
    graph_inputs, seen = [], set()
    for n in nodes:
        for i in n.input:
            if i and i not in produced and not i.startswith("__c") and i not in seen:
                seen.add(i)
                graph_inputs.append(helper.make_tensor_value_info(i, TensorProto.FLOAT, list(shapes.get(i, ()))))
    outputs = [t for t in produced if t not in consumed]
    # tensors consumed outside ``layers`` (or by a stand-in) must stay materialised
    standin_inputs = {t for l in standins for t in l.inputs}
    outputs += [t for t in produced if t in consumed and t in standin_inputs]
    graph_outputs = [helper.make_tensor_value_info(t, TensorProto.FLOAT, list(produced[t])) for t in dict.fromkeys(outputs)]
    value_info = [helper.make_tensor_value_info(t, TensorProto.FLOAT, list(s)) for t, s in produced.items()
                  if t not in set(outputs)]
    graph = helper.make_graph(nodes, "skeleton", graph_inputs, graph_outputs, b.inits, value_info=value_info)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    return model, standins


# ---------------------------------------------------------------------------------------
# 2. onnxruntime's optimized graph -> runtime kernels with signatures
# ---------------------------------------------------------------------------------------
@dataclass
class RuntimeKernel:
    name: str                       # the optimized node's name (what the profiler reports)
    op: str                         # "domain:OpType" ("" domain written as "ai.onnx")
    kind: str                       # regressor class
    signature: dict
    features: dict
    represents: str | None = None   # original tensor this node produces (fused chains: the last)
    act_inputs: list[str] = field(default_factory=list)   # original tensors it reads

    @property
    def sig_hash(self) -> str:
        from hwmodels.kernel_store import signature_hash
        return signature_hash(self.signature)


def model_hash(model) -> str:
    return hashlib.sha256(model.SerializeToString()).hexdigest()[:16]


def optimize(model, threads: int = 1, opt_level: str = "all"):
    """onnxruntime's optimized graph for ``model`` (a session is created; nothing is run)."""
    import onnx

    from hwmodels.ort_runner import make_session

    fd, path = tempfile.mkstemp(suffix=".onnx")
    os.close(fd)
    try:
        make_session(model.SerializeToString(), threads, opt_level, optimized_path=path)
        return onnx.load(path)
    finally:
        Path(path).unlink(missing_ok=True)


def _attr_dict(node) -> dict:
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode(errors="replace")
        elif isinstance(v, list):
            v = [x.decode(errors="replace") if isinstance(x, bytes) else (round(x, 6) if isinstance(x, float) else x) for x in v]
        elif isinstance(v, float):
            v = round(v, 6)
        elif not isinstance(v, (int, str)):
            v = str(type(v).__name__)
        out[a.name] = v
    return out


def _conv_out(hw, kernel, strides, pads, dilations, ceil=False):
    out = []
    nd = len(hw)
    for i in range(nd):
        eff = (kernel[i] - 1) * dilations[i] + 1
        num = hw[i] + pads[i] + pads[i + nd] - eff
        out.append((-(-num // strides[i]) if ceil else num // strides[i]) + 1)
    return out


def _spatial_out(attrs, in_shape, kernel):
    nd = len(in_shape) - 2
    strides = attrs.get("strides") or [1] * nd
    dil = attrs.get("dilations") or [1] * nd
    pads = attrs.get("pads") or [0] * (2 * nd)
    auto = attrs.get("auto_pad", "NOTSET")
    hw = list(in_shape[2:])
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return [-(-h // s) for h, s in zip(hw, strides)]
    return _conv_out(hw, kernel, strides, pads, dil, bool(attrs.get("ceil_mode", 0)))


def optimized_kernels(opt_model, tensor_shapes: dict[str, tuple]) -> list[RuntimeKernel]:
    """Runtime kernels of an optimized model, with signatures and shape features.

    ``tensor_shapes``: shapes of the original (pre-optimization) tensors.  Activation inputs
    are described by the original tensor they carry (a blocked-layout token by the tensor it
    was reordered from or computed as), so the same kernel gets the same signature in any graph.
    """
    inits = {i.name: tuple(i.dims) for i in opt_model.graph.initializer}
    logical: dict[str, tuple] = dict(tensor_shapes)       # tensor -> logical NCHW shape
    origin: dict[str, str] = {t: t for t in tensor_shapes}  # token -> original tensor it carries
    kernels = []
    for node in opt_model.graph.node:
        attrs = _attr_dict(node)
        domain = node.domain or "ai.onnx"
        op = f"{domain}:{node.op_type}"
        represents = None
        for o in node.output:
            if o in tensor_shapes:
                represents = o
                break
        if represents is None and node.name.endswith("_nchwc") and node.name[:-6] in tensor_shapes:
            represents = node.name[:-6]
        if represents is None and node.op_type == "ReorderInput" and node.input[0] in origin:
            represents = origin[node.input[0]]
        act_in, w_in = [], []
        for i in node.input:
            if not i:
                continue
            if i in inits:
                w_in.append(list(inits[i]))
            else:
                act_in.append(i)
        in_shapes = [list(logical.get(i, ())) for i in act_in]
        # output shape: the original tensor's if known, else propagate
        if represents is not None and represents in tensor_shapes and node.op_type != "ReorderInput":
            out_shape = list(tensor_shapes[represents])
        else:
            out_shape = _propagate(node.op_type, attrs, in_shapes, w_in)
        for o in node.output[:1]:
            logical.setdefault(o, tuple(out_shape))
            if represents is not None:
                origin[o] = represents
        sig = {"op": op, "inputs": in_shapes, "weights": w_in, "output": out_shape, "dtype": "float32",
               "attrs": {k: v for k, v in sorted(attrs.items()) if _DEFAULT_ATTRS.get(k, object()) != v}}
        kind, feats = _kind_and_features(node.op_type, domain, attrs, in_shapes, w_in, out_shape)
        kernels.append(RuntimeKernel(node.name, op, kind, sig, feats, represents,
                                     [origin.get(i, i) for i in act_in]))
    return kernels


def _propagate(op_type, attrs, in_shapes, w_in):
    x = in_shapes[0] if in_shapes else []
    if op_type == "Conv" and w_in and len(x) >= 3:
        w = w_in[0]
        return [x[0], w[0]] + _spatial_out(attrs, x, attrs.get("kernel_shape") or w[2:])
    if op_type in ("MaxPool", "AveragePool") and len(x) >= 3:
        return [x[0], x[1]] + _spatial_out(attrs, x, attrs["kernel_shape"])
    if op_type in ("GlobalAveragePool", "GlobalMaxPool") and len(x) >= 3:
        return [x[0], x[1]] + [1] * (len(x) - 2)
    if op_type == "ReorderOutput" and x:
        return [x[0], attrs.get("channels", x[1])] + list(x[2:])
    if op_type == "Upsample" and x:
        sc = attrs.get("scales") or [1] * len(x)
        return [int(d * s) for d, s in zip(x, list(sc) + [1] * (len(x) - len(sc)))]
    return list(x)


def _kind_and_features(op_type, domain, attrs, in_shapes, w_in, out_shape):
    short = ("nchwc." if domain.endswith("nchwc") else "") + op_type
    x = in_shapes[0] if in_shapes else []
    in_elems = sum(_numel(s) for s in in_shapes)
    out_elems = _numel(out_shape) if out_shape else 0
    w_elems = sum(_numel(w) for w in w_in)
    f = {"in_elems": in_elems, "out_elems": out_elems, "w_elems": w_elems, "macs": 0, "c": 0, "k": 0, "h": 0,
         "w": 0, "p": 0, "q": 0, "r": 1, "s": 1, "stride": 1, "groups": 1, "act": 0, "has_sum": 0, "n_inputs": len(in_shapes)}
    act = attrs.get("activation", "")
    f["act"] = _ACT_CODES.get(act, 8 if act else 0)
    kind = short
    conv_like = op_type in ("Conv", "FusedConv", "ConvTranspose") or (op_type == "NhwcFusedConv")
    if conv_like and w_in and len(x) == 4 and len(out_shape) == 4:
        w = w_in[0]
        groups = int(attrs.get("group", 1))
        f.update(c=x[1], h=x[2], w=x[3], k=out_shape[1], p=out_shape[2], q=out_shape[3], r=w[2], s=w[3],
                 stride=(attrs.get("strides") or [1])[0], groups=groups,
                 macs=out_shape[0] * out_shape[2] * out_shape[3] * _numel(w), has_sum=int(len(in_shapes) > 1),
                 w0=w[0], w1=w[1], pq=out_shape[2] * out_shape[3], c16=-(-x[1] // 16) * 16, k16=-(-out_shape[1] // 16) * 16)
        if groups > 1 and w[1] == 1:
            kind += "/depthwise"
        elif w[2] == 1 and w[3] == 1:
            kind += "/pointwise"
        else:
            kind += "/dense"
    elif op_type in ("Gemm", "FusedGemm", "MatMul", "FusedMatMul") and x:
        kdim = x[-1] if not attrs.get("transA") else x[-2]
        f.update(macs=out_elems * kdim, c=kdim, k=out_shape[-1] if out_shape else 0)
        kind = "gemm" if op_type != "MatMul" or w_in else "matmul"
    elif op_type in ("MaxPool", "AveragePool") and len(x) == 4:
        ks = attrs.get("kernel_shape", [1, 1])
        f.update(c=x[1], h=x[2], w=x[3], p=out_shape[2], q=out_shape[3], r=ks[0], s=ks[-1],
                 stride=(attrs.get("strides") or [1])[0], macs=out_elems * _numel(ks))
    elif len(x) == 4:
        f.update(c=x[1], h=x[2], w=x[3])
        if len(out_shape) == 4:
            f.update(p=out_shape[2], q=out_shape[3], k=out_shape[1])
    return kind, f


# ---------------------------------------------------------------------------------------
# 3. runtime kernels -> workload layers
# ---------------------------------------------------------------------------------------
def map_kernels_to_layers(kernels: list[RuntimeKernel], layers: list[Layer]) -> dict[str, list[str]]:
    """``{kernel name: [layer names it covers]}``; reorders cover no layer.

    A layer is anchored to the kernel that produces (or, fused, is named after) its output;
    a layer whose output no kernel produces was fused away and joins its first consumer's
    kernel (Conv -> BatchNorm -> Relu all join the kernel named after the Relu output).
    """
    producer = {t: l.name for l in layers for t in l.outputs[:1]}
    consumers: dict[str, list[str]] = {}
    for l in layers:
        for t in l.inputs:
            consumers.setdefault(t, []).append(l.name)
    by_name = {l.name: l for l in layers}
    owner: dict[str, str] = {}
    for k in kernels:
        if k.op.endswith(("ReorderInput", "ReorderOutput")):
            continue
        if k.represents and k.represents in producer:
            owner.setdefault(producer[k.represents], k.name)
    order = [l.name for l in layers]
    kern = {k.name: k for k in kernels}
    # a residual Add fused into a convolution's "Sum" input, and an activation fused after it,
    # join the producer's kernel
    for name in order:
        if name in owner:
            continue
        l = by_name[name]
        prods = [owner.get(producer.get(t, ""), None) for t in l.inputs]
        prods = [p for p in prods if p is not None]
        if l.op == "Add" and len(l.inputs) == 2:
            fused = [p for p in prods if kern[p].features.get("has_sum")]
            if fused:
                owner[name] = fused[0]
        elif l.op in _ACT_CODES and len(prods) == 1:
            k = kern[prods[0]]
            if k.signature["attrs"].get("activation") == l.op and k.features.get("has_sum") \
                    and any(by_name[n].op == "Add" for n, o in owner.items() if o == k.name):
                owner[name] = k.name
    for name in reversed(order):   # reverse topological: consumers are resolved first
        if name in owner:
            continue
        for t in by_name[name].outputs[:1]:
            for c in consumers.get(t, []):
                if c in owner:
                    owner[name] = owner[c]
                    break
    out: dict[str, list[str]] = {k.name: [] for k in kernels}
    for name in order:
        if name in owner:
            out[owner[name]].append(name)
    return out


# ---------------------------------------------------------------------------------------
# 4. profiling
# ---------------------------------------------------------------------------------------
def robust_center(samples, floor: float = 0.5) -> tuple[float, float, int]:
    """Mean of the samples within 3 MADs of the median (MAD floored at ``floor``):
    (center, mad, kept).  Profiler durations are whole microseconds; the trimmed mean keeps
    sub-microsecond resolution that a median would lose."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        return float("nan"), float("nan"), 0
    med = float(np.median(x))
    mad = max(float(np.median(np.abs(x - med))), floor)
    kept = x[np.abs(x - med) <= 3 * 1.4826 * mad]
    if kept.size == 0:
        kept = x
    return float(kept.mean()), float(np.median(np.abs(x - med))), int(kept.size)


def fast_center(samples) -> tuple[float, float, int]:
    """Mean of the fastest quarter of the samples: (center, mad, used).

    On a shared machine interruptions (other processes, a busy hyper-thread sibling, cache
    pollution after a context switch) only ever add time, so the fast end of the
    distribution is the reproducible one; the mean of the fastest quarter keeps
    sub-microsecond resolution from whole-microsecond profiler durations.
    """
    x = np.sort(np.asarray(samples, dtype=float))
    if x.size == 0:
        return float("nan"), float("nan"), 0
    q = x[: max(1, x.size // 4)]
    return float(q.mean()), float(np.median(np.abs(x - np.median(x)))), int(q.size)


def profile_model(model, repeats: int = 30, warmup: int = 5, threads: int = 1, opt_level: str = "all",
                  min_time_s: float = 0.05, max_time_s: float = 2.0, with_run_latency: bool = True,
                  want_optimized: bool = False) -> dict:
    """Run ``model`` (ModelProto) under onnxruntime's profiler.

    Returns ``{"nodes": {name: (us, mad_us, n)}, "run_us": (us, mad, n) | None, "runs": int,
    "optimized": ModelProto | None}``.  Node times are ``fast_center`` of the profiler's per-node
    kernel times over the timed runs (warm-up runs dropped); ``run_us`` is ``fast_center`` of
    the plain (profiler-off) wall time per run; ``optimized`` is the graph onnxruntime ran
    (``want_optimized``).
    """
    import onnx

    from hwmodels.ort_runner import make_session, random_feeds, time_session

    data = model.SerializeToString()
    tmpdir = tempfile.mkdtemp(prefix="codesign_prof_")
    opt_path = str(Path(tmpdir) / "optimized.onnx") if want_optimized else None
    optimized = None
    try:
        sess = make_session(data, threads, opt_level, profile_prefix=str(Path(tmpdir) / "p"), optimized_path=opt_path)
        if opt_path:
            optimized = onnx.load(opt_path)
        feeds = random_feeds(sess)
        wall = time_session(sess, feeds, repeats, warmup, min_time_s, max_time_s)
        prof = sess.end_profiling()
        events = json.loads(Path(prof).read_text())
    finally:
        for p in Path(tmpdir).glob("*"):
            p.unlink(missing_ok=True)
        os.rmdir(tmpdir)
    samples: dict[str, list[float]] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            samples.setdefault(e["name"][: -len("_kernel_time")], []).append(float(e["dur"]))
    nodes = {k: fast_center(v[warmup:] if len(v) > warmup else v) for k, v in samples.items()}
    run = None
    if with_run_latency:
        sess2 = make_session(data, threads, opt_level)
        w = time_session(sess2, random_feeds(sess2), repeats, warmup, min_time_s, max_time_s)
        run = fast_center([x * 1e6 for x in w])
    return {"nodes": nodes, "run_us": run, "runs": len(wall), "optimized": optimized}


def workload_shapes(layers: list[Layer], extra: dict | None = None) -> dict[str, tuple]:
    shapes: dict[str, tuple] = dict(extra or {})
    for l in layers:
        for t, s in zip(l.inputs, l.input_shapes):
            shapes.setdefault(t, tuple(s))
        for t, s in zip(l.outputs, l.output_shapes):
            shapes[t] = tuple(s)
    return shapes


@dataclass
class CompiledGraph:
    """A Workload as onnxruntime will run it."""

    kernels: list[RuntimeKernel]
    layers_of: dict[str, list[str]]      # kernel name -> layer names
    standins: list[Layer]                # layers that could not be rebuilt (costed apart)
    model: object                        # the skeleton ModelProto


def compile_workload(workload: Workload | list[Layer], threads: int = 1, opt_level: str = "all") -> CompiledGraph:
    layers = workload.layers() if isinstance(workload, Workload) else list(workload)
    model, standins = skeleton_model(layers)
    if not model.graph.node:
        return CompiledGraph([], {}, standins, model)
    try:
        opt = optimize(model, threads, opt_level)
    except Exception:   # the rebuilt graph is not loadable: every layer is costed apart
        return CompiledGraph([], {}, layers, model)
    kernels = optimized_kernels(opt, workload_shapes(layers))
    return CompiledGraph(kernels, map_kernels_to_layers(kernels, layers), standins, model)


# ---------------------------------------------------------------------------------------
# 5. profiling blocks into a KernelStore
# ---------------------------------------------------------------------------------------
def model_tensor_shapes(model) -> dict[str, tuple]:
    """Static shapes of every tensor of ``model`` (ONNX shape inference)."""
    from onnx import shape_inference

    inferred = shape_inference.infer_shapes(model, strict_mode=False)
    shapes = {}
    for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
            shapes[vi.name] = tuple(d.dim_value for d in t.shape.dim)
    return shapes


def block_kernels(model, threads: int = 1, opt_level: str = "all") -> list[RuntimeKernel]:
    return optimized_kernels(optimize(model, threads, opt_level), model_tensor_shapes(model))


def profile_block(model, store, machine: str, threads: int = 1, opt_level: str = "all", repeats: int = 30,
                  warmup: int = 5, force: bool = False, keep_faster: bool = True) -> tuple[int, int]:
    """Profile one block model and store every kernel it runs.  Returns (stored, already_known).

    A block profiled before (same model bytes, machine, threads, level) is skipped unless
    ``force``, so an interrupted or repeated profile resumes where it stopped.  With
    ``keep_faster`` a kernel already stored with a lower time keeps it (a kernel measured again
    -- in another block, or in a second pass -- keeps its least-disturbed measurement).
    """
    from hwmodels.kernel_store import KernelRecord

    bhash = model_hash(model)
    if not force and store.has_block(bhash, "onnxruntime", machine, threads, opt_level):
        return 0, 1
    prof = profile_model(model, repeats, warmup, threads, opt_level, with_run_latency=False, want_optimized=True)
    kernels = optimized_kernels(prof["optimized"], model_tensor_shapes(model))
    stored = 0
    for k in kernels:
        if k.name not in prof["nodes"]:
            continue
        us, mad, n = prof["nodes"][k.name]
        if not (us > 0):
            continue
        store.put(KernelRecord(k.sig_hash, k.kind, k.op, k.signature, k.features, us, mad, n, "onnxruntime",
                               machine, threads, opt_level), commit=False, keep_faster=keep_faster)
        stored += 1
    store.mark_block(bhash, "onnxruntime", machine, threads, opt_level)   # commits the kernels too
    return stored, 0


def _chain_model(k: int, width: int = 16):
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Neg", [f"t{i}"], [f"t{i + 1}"], name=f"neg{i}") for i in range(k)]
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [1, width])],
                          [helper.make_tensor_value_info(f"t{k}", TensorProto.FLOAT, [1, width])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)


def measure_overhead(store, machine: str, threads: int = 1, opt_level: str = "all", lengths=(1, 8, 32, 64),
                     rounds: int = 3) -> tuple[float, float]:
    """Fit ``run latency - sum of profiled kernel times = per_run + per_node * nodes`` on chains
    of tiny nodes, and store it.  ``per_node`` is usually negative: the profiler's per-node
    kernel time includes a few microseconds of its own bookkeeping that a plain run does not pay.
    Returns (per_run_us, per_node_us)."""
    xs, ys = [], []
    for _ in range(rounds):
        for k in lengths:
            m = _chain_model(k)
            prof = profile_model(m, repeats=100, warmup=20, threads=threads, opt_level=opt_level, min_time_s=0.05)
            total = sum(v[0] for v in prof["nodes"].values())
            xs.append(len(prof["nodes"]))
            ys.append(prof["run_us"][0] - total)
    A = np.vstack([np.ones(len(xs)), np.asarray(xs, float)]).T
    coef, *_ = np.linalg.lstsq(A, np.asarray(ys, float), rcond=None)
    per_run, per_node = float(coef[0]), float(coef[1])
    store.put_overhead("onnxruntime", machine, threads, opt_level, per_run, per_node, len(xs))
    return per_run, per_node
