"""onnxruntime's optimized graph -> the runtime kernels it runs, with signatures, and the layers each covers.

The unit of measurement is the *runtime kernel*: a node of the graph onnxruntime actually
executes after its graph optimizations (ORT_ENABLE_ALL by default).  Those fuse
Conv+BatchNorm+activation (+residual Add) into one node, turn convolutions and pools into
blocked-layout ``com.microsoft.nchwc`` kernels with ``ReorderInput``/``ReorderOutput`` at
the layout boundaries, fuse Gemm+activation into ``FusedGemm``, and so on.  Rather than
re-implementing those rules the fusion is taken from onnxruntime itself (``optimize``), and:

* ``optimized_kernels`` lists each runtime kernel with its signature (op, logical shapes,
  dtype, non-default attributes), its regressor class and shape features.  A kernel's
  signature is computed the same way when it is measured inside a one-block model and when
  it is predicted inside a whole network, so a stored measurement is an exact hit wherever
  the same kernel occurs;
* ``map_kernels_to_layers`` maps every kernel back to the workload layers it covers: a fused
  node is named after (or outputs) the last original tensor it produces, and every layer
  whose output vanished is folded forward into its consumer's kernel.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hwmodels.ort_skeleton import numel
from hwmodels.workload import Layer

_ACT_CODES = {"": 0, "Relu": 1, "Clip": 2, "Sigmoid": 3, "HardSigmoid": 4, "HardSwish": 5, "Tanh": 6, "LeakyRelu": 7}

# attribute values equal to the ONNX default are dropped from signatures (writers differ in
# whether they spell them out)
_DEFAULT_ATTRS = {"transA": 0, "transB": 0, "alpha": 1.0, "beta": 1.0, "auto_pad": "NOTSET", "ceil_mode": 0,
                  "storage_order": 0, "channels_last": 0, "keepdims": 1, "allowzero": 0, "group": 1,
                  "dilations": [1, 1], "strides": [1, 1], "count_include_pad": 0}


@dataclass
class RuntimeKernel:
    """One node of the optimized graph, described independently of the graph it sits in."""

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


def optimize(model, threads: int = 1, opt_level: str = "all", keep_session: bool = False):
    """onnxruntime's optimized graph for ``model`` (a session is created; nothing is run).

    With ``keep_session`` returns ``(optimized ModelProto, session)``: the session runs the
    same kernels, so a caller that wants to time the network does not build it twice."""
    import onnx

    from hwmodels.ort_runner import make_session

    fd, path = tempfile.mkstemp(suffix=".onnx")
    os.close(fd)
    try:
        sess = make_session(model.SerializeToString(), threads, opt_level, optimized_path=path)
        opt = onnx.load(path)
    finally:
        Path(path).unlink(missing_ok=True)
    return (opt, sess) if keep_session else opt


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
    in_elems = sum(numel(s) for s in in_shapes)
    out_elems = numel(out_shape) if out_shape else 0
    w_elems = sum(numel(w) for w in w_in)
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
                 macs=out_shape[0] * out_shape[2] * out_shape[3] * numel(w), has_sum=int(len(in_shapes) > 1),
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
                 stride=(attrs.get("strides") or [1])[0], macs=out_elems * numel(ks))
    elif len(x) == 4:
        f.update(c=x[1], h=x[2], w=x[3])
        if len(out_shape) == 4:
            f.update(p=out_shape[2], q=out_shape[3], k=out_shape[1])
    return kind, f



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


