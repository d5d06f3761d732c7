"""TVM Relax IRModule -> Workload, by walking the Relax calls of the entry function.

Relax ops are translated to their ONNX equivalents (op type + attributes) so that the
same ``op_rules`` table costs both routes: a network gets the same MACs whichever
frontend it enters through.  Works on modules from ``tvm.relax.frontend.onnx`` and on
modules written in TVM directly (BlockBuilder, TVMScript), before legalization.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hwmodels.errors import CodesignError
from codesign.frontends.op_rules import RULES, NodeView, OpCost, numel
from hwmodels.workload import Layer, Workload


def _ints(x) -> list[int]:
    return [int(v) for v in x] if x is not None else []


def _conv_attrs(a) -> dict:
    if str(a.data_layout) not in ("NCHW", "NCW") or str(a.kernel_layout) not in ("OIHW", "OIW", "IOHW", "IOW"):
        raise CodesignError(f"Relax conv with layout {a.data_layout}/{a.kernel_layout}: only NCHW/OIHW is modelled")
    pads = _ints(a.padding)
    if len(pads) == 2:  # conv1d: (begin, end)
        pads = [pads[0], pads[1]]
    return {"group": int(a.groups), "strides": _ints(a.strides), "dilations": _ints(a.dilation), "pads": pads}


def _pool_attrs(a) -> dict:
    return {"kernel_shape": _ints(a.pool_size), "strides": _ints(a.strides)}


# relax op name -> (ONNX op type, attribute translator)
_RELAX_TO_ONNX = {
    "relax.nn.conv2d": ("Conv", _conv_attrs),
    "relax.nn.conv1d": ("Conv", _conv_attrs),
    "relax.nn.conv2d_transpose": ("ConvTranspose", lambda a: {"group": int(a.groups)}),
    "relax.matmul": ("MatMul", None),
    "relax.einsum": ("Einsum", lambda a: {"equation": str(a.subscripts)}),
    "relax.nn.max_pool2d": ("MaxPool", _pool_attrs),
    "relax.nn.avg_pool2d": ("AveragePool", _pool_attrs),
    "relax.nn.adaptive_avg_pool2d": ("GlobalAveragePool", None),
    "relax.nn.batch_norm": ("BatchNormalization", None),
    "relax.nn.layer_norm": ("LayerNormalization", None),
    "relax.nn.group_norm": ("GroupNormalization", None),
    "relax.nn.instance_norm": ("InstanceNormalization", None),
    "relax.nn.rms_norm": ("RMSNormalization", None),
    "relax.nn.softmax": ("Softmax", None),
    "relax.nn.log_softmax": ("LogSoftmax", None),
    "relax.nn.relu": ("Relu", None), "relax.nn.relu6": ("Clip", None),
    "relax.nn.gelu": ("Gelu", None), "relax.nn.gelu_tanh": ("Gelu", None), "relax.nn.silu": ("Sigmoid", None),
    "relax.nn.leakyrelu": ("LeakyRelu", None), "relax.nn.prelu": ("PRelu", None),
    "relax.sigmoid": ("Sigmoid", None), "relax.tanh": ("Tanh", None), "relax.exp": ("Exp", None),
    "relax.log": ("Log", None), "relax.sqrt": ("Sqrt", None), "relax.rsqrt": ("Sqrt", None), "relax.erf": ("Erf", None),
    "relax.add": ("Add", None), "relax.subtract": ("Sub", None), "relax.multiply": ("Mul", None),
    "relax.divide": ("Div", None), "relax.power": ("Pow", None), "relax.maximum": ("Max", None),
    "relax.minimum": ("Min", None), "relax.clip": ("Clip", None), "relax.negative": ("Neg", None),
    "relax.abs": ("Abs", None), "relax.where": ("Where", None), "relax.astype": ("Cast", None),
    "relax.equal": ("Equal", None), "relax.less": ("Less", None), "relax.greater": ("Greater", None),
    "relax.floor": ("Floor", None), "relax.ceil": ("Ceil", None), "relax.round": ("Round", None),
    "relax.mean": ("ReduceMean", None), "relax.sum": ("ReduceSum", None), "relax.max": ("ReduceMax", None),
    "relax.min": ("ReduceMin", None), "relax.argmax": ("ArgMax", None), "relax.argmin": ("ArgMin", None),
    "relax.image.resize2d": ("Resize", None),
    **{f"relax.{op}": ("Reshape", None) for op in (
        "reshape", "permute_dims", "concat", "split", "strided_slice", "squeeze", "expand_dims",
        "flatten", "take", "broadcast_to", "tile", "repeat", "nn.pad", "zeros", "ones", "full",
        "zeros_like", "ones_like", "full_like", "collapse_sum_to", "layout_transform", "dynamic_strided_slice",
        "nn.dropout", "gather_elements", "gather_nd", "scatter_elements", "tril", "triu", "flip",
    )},
}


def _tensor_type(expr):
    ty = getattr(expr, "ty", None)
    shape = getattr(ty, "shape", None)
    if shape is None or not hasattr(shape, "values"):
        return None, None
    try:
        return tuple(int(v) for v in shape.values), str(ty.dtype)
    except (TypeError, ValueError):
        return None, str(ty.dtype)  # symbolic dims


def _is_constant(expr) -> bool:
    return type(expr).__name__ in ("GenericConst", "Constant")


def load_relax(mod, name: str = "relax_module", function: str = "main") -> Workload:
    """Build a Workload from ``mod[function]`` of a Relax IRModule."""
    from tvm import relax

    try:
        func = mod[function]
    except Exception:
        raise CodesignError(f"Relax module has no function {function!r}") from None
    wl = Workload(name)
    static: set[str] = set()
    producer: dict[str, str] = {}
    param_owner: dict[int, str] = {}
    for p in func.params:
        shape, _ = _tensor_type(p)
        if shape is None:
            raise CodesignError(f"Relax input {p.name!r} has a symbolic shape; bind static shapes before import")
        wl.graph_inputs[p.name] = shape
    index = 0
    for block in func.body.blocks:
        for binding in block.bindings:
            value, out = binding.value, binding.var
            if not isinstance(value, relax.Call) or not hasattr(value.op, "name"):
                if all(_arg_static(a, static) for a in _tensor_args(value)):
                    static.add(out.name)
                continue
            args = list(value.args)
            if all(_arg_static(a, static) for a in args):
                static.add(out.name)     # constant folding: weights reshaped/transposed at compile time
                continue
            layer = _layer(value, out, args, static, param_owner, f"{out.name}")
            wl.add_layer(layer)
            wl.graph.nodes[layer.name]["index"] = index
            index += 1
            for t in layer.inputs:
                if t in producer:
                    shp = wl.graph.nodes[producer[t]]["layer"].output_shapes
                    wl.add_edge(producer[t], layer.name, t, numel(shp[0]) * layer.dtype_bytes if shp else 0)
            producer[out.name] = layer.name
    ret_shape, _ = _tensor_type(func.body.body)
    wl.graph_outputs = {getattr(func.body.body, "name", "output"): ret_shape or ()}
    return wl


def _tensor_args(value) -> list:
    return list(getattr(value, "fields", [])) or ([value.tuple_value] if hasattr(value, "tuple_value") else [value])


def _arg_static(arg, static: set[str]) -> bool:
    if _is_constant(arg) or type(arg).__name__ in ("ShapeExpr", "PrimValue", "StringImm", "DataTypeImm"):
        return True
    if type(arg).__name__ == "Tuple":
        return all(_arg_static(f, static) for f in arg.fields)
    return getattr(arg, "name", None) in static


def _flatten_args(args) -> list:
    out = []
    for a in args:
        if type(a).__name__ == "Tuple":
            out.extend(a.fields)
        else:
            out.append(a)
    return out


def _layer(call, out, args, static, param_owner, layer_name) -> Layer:
    relax_op = call.op.name
    if relax_op == "relax.call_tir":
        # a TIR kernel the frontend emitted directly (e.g. "maximum3"): cost it as the op it names
        callee = getattr(args[0], "name_hint", "tir").rstrip("0123456789_")
        relax_op, args = f"relax.{callee}", list(args[1:2])
    onnx_op, translate = _RELAX_TO_ONNX.get(relax_op, (None, None))
    flat = _flatten_args(args)
    in_shapes = [_tensor_type(a)[0] for a in flat]
    out_shape, out_dtype = _tensor_type(out)
    dtype_bytes = np.dtype(out_dtype).itemsize if out_dtype and out_dtype not in ("", "void") else 4
    act = [a for a in flat if not _arg_static(a, static) and hasattr(a, "name")]
    # weights: constants, and static values folded from constants (e.g. a transposed weight)
    consts = [a for a in flat if _is_constant(a) or (getattr(a, "name", None) in static and hasattr(a, "ty"))]
    cost = OpCost("other")
    modelled = onnx_op is not None
    if modelled:
        attrs = translate(call.attrs) if translate and call.attrs is not None else {}
        if relax_op == "relax.nn.conv2d_transpose":
            attrs["group"] = int(call.attrs.groups)
        view = NodeView(op=onnx_op, attrs=attrs, input_shapes=in_shapes,
                        output_shapes=[out_shape] if out_shape else [], input_is_const=[_is_constant(a) for a in flat])
        cost = RULES[onnx_op](view)
        if onnx_op == "Conv" and relax_op == "relax.nn.conv2d" and str(call.attrs.kernel_layout) != "OIHW":
            raise CodesignError(f"Relax conv {layer_name!r} has kernel layout {call.attrs.kernel_layout}; only OIHW is modelled")
    params = weight_bytes = 0
    for c in consts:
        shape, dt = _tensor_type(c)
        if shape is not None and dt and dt.startswith(("float", "bfloat")) and id(c) not in param_owner \
                and getattr(c, "name", None) not in param_owner:
            param_owner[id(c)] = (layer_name, c)   # keep c alive so its id is never reused
            if hasattr(c, "name") and not _is_constant(c):
                param_owner[c.name] = layer_name
            params += numel(shape)
            weight_bytes += numel(shape) * np.dtype(dt).itemsize if dt != "bfloat16" else numel(shape) * 2
    act_shapes = [_tensor_type(a)[0] or () for a in act]
    return Layer(
        name=layer_name, op=relax_op, op_class=cost.op_class,
        inputs=[a.name for a in act], outputs=[out.name],
        input_shapes=act_shapes, output_shapes=[out_shape or ()],
        attrs={}, conv=cost.conv, gemm=cost.gemm, macs=int(cost.macs), ops=int(cost.ops),
        params=params, weight_bytes=weight_bytes,
        input_bytes=sum(numel(s) * dtype_bytes for s in act_shapes),
        output_bytes=numel(out_shape or ()) * dtype_bytes, dtype_bytes=dtype_bytes, modelled=modelled,
    )


def relax_from_onnx(path: str | Path, input_shapes: dict[str, tuple[int, ...]] | None = None):
    """ONNX file -> Relax IRModule with ``tvm.relax.frontend.onnx`` (static shapes)."""
    from tvm.relax.frontend.onnx import from_onnx

    from codesign.frontends.onnx_frontend import _with_static_inputs, read_onnx

    model, _ = _with_static_inputs(read_onnx(path), input_shapes or {}, str(path))   # batch 1 when dynamic
    try:
        return from_onnx(model, keep_params_in_input=False)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CodesignError(f"{path}: TVM Relax import failed: {first[:300]}") from None


def load_onnx_via_tvm(path: str | Path, input_shapes: dict[str, tuple[int, ...]] | None = None) -> Workload:
    return load_relax(relax_from_onnx(path, input_shapes), name=Path(path).stem)
