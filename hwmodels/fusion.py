"""Runtime kernels: how an inference runtime turns a Workload's layers into the kernels it runs.

A runtime does not run one kernel per ONNX node.  It folds BatchNorm into the convolution
before it, fuses activations into the producing kernel, runs shape-only ops (Reshape,
Flatten, Identity, Dropout) as views, and -- depending on the runtime -- fuses a residual Add
into the convolution that feeds it or splits a grouped convolution into one convolution per
group with a Split and a Concat around them.  The device models cost kernels, not nodes: a
fused Conv+BN+ReLU pays one dispatch and writes its output once.

``fuse(workload, rules)`` returns a new Workload whose layers are the kernels (a kernel is a
``Layer`` whose ``attrs["members"]`` lists the nodes it ran), so every cost model that reads a
Workload can cost kernels unchanged.  The rules are data (``FusionRules``), chosen per target.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from hwmodels.workload import Layer, Workload

VIEW_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout",
                      "relax.reshape", "relax.squeeze", "relax.expand_dims", "relax.flatten", "relax.nn.dropout"})
ACTIVATIONS = frozenset({"Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Elu", "PRelu"})
ANCHORS = frozenset({"conv", "depthwise_conv", "pointwise_conv", "matmul", "grouped_conv"})


@dataclass(frozen=True)
class FusionRules:
    """What a runtime fuses.  Presets: ``RUNTIMES``."""

    fold_batchnorm: bool = True          # BN after a conv/GEMM becomes its scale and bias
    fuse_activation: frozenset = ACTIVATIONS   # activations a MAC kernel (and an Add) absorbs
    fuse_residual_add: bool = False      # conv + Add(+act) as one kernel (onnxruntime's FusedConv "sum")
    split_grouped_conv: bool = False     # groups > 1 (not depthwise) run as Split + G convs + Concat
    views_free: bool = True              # Reshape & co. are views, no kernel


RUNTIMES = {
    # TFLite (2.x builtin kernels, as converted from ONNX/TF): CONV_2D / DEPTHWISE_CONV_2D /
    # FULLY_CONNECTED with a fused activation (RELU, RELU6, RELU_N1_TO_1, TANH); ADD is its own
    # kernel (it absorbs a following activation); BatchNorm is folded by the converter; a grouped
    # convolution has no builtin kernel and is converted to SPLIT + one CONV_2D per group + CONCATENATION.
    "tflite": FusionRules(fuse_activation=frozenset({"Relu", "Clip", "Tanh"}), split_grouped_conv=True),
    # onnxruntime (ORT_ENABLE_ALL, CPU): Conv+BN folding, Conv+activation and Conv+Add(+Relu)
    # fusion into FusedConv / NCHWc conv with a sum post-op; grouped convs run natively.
    "onnxruntime": FusionRules(fuse_residual_add=True),
    # eager PyTorch: every module is a kernel; BN already folded in the exported graph, so the
    # remaining difference to TFLite is the unfused activation
    "none": FusionRules(fold_batchnorm=True, fuse_activation=frozenset(), views_free=True),
}


def fuse(workload: Workload, rules: FusionRules) -> Workload:
    """The kernels ``rules`` form from ``workload``'s layers, as a Workload of kernel layers."""
    layers = workload.layers()
    producer = {t: l for l in layers for t in l.outputs}
    consumers: dict[str, list[Layer]] = {}
    for l in layers:
        for t in l.inputs:
            consumers.setdefault(t, []).append(l)
    outputs = set(workload.graph_outputs)

    def sole_consumer(layer: Layer) -> Layer | None:
        if len(layer.outputs) != 1 or layer.outputs[0] in outputs:
            return None
        users = consumers.get(layer.outputs[0], [])
        return users[0] if len(users) == 1 else None

    absorbed: set[str] = set()
    kernels: list[Layer] = []
    for layer in layers:
        if layer.name in absorbed:
            continue
        if rules.views_free and layer.op in VIEW_OPS:
            continue
        members = [layer]
        if layer.op_class in ANCHORS or layer.op in ("Add", "Sum"):
            nxt = sole_consumer(layer)
            while nxt is not None:
                if rules.fold_batchnorm and nxt.op == "BatchNormalization" and members[-1].op_class in ANCHORS:
                    pass
                elif nxt.op in rules.fuse_activation:
                    pass
                elif (rules.fuse_residual_add and nxt.op == "Add" and members[-1].op_class in ANCHORS | {"norm"}
                      and layer.op_class in ANCHORS and not any(m.op == "Add" for m in members)):
                    pass
                else:
                    break
                members.append(nxt)
                absorbed.add(nxt.name)
                nxt = sole_consumer(nxt)
        kernels += _kernels_of(members, rules, producer)
    out = Workload(workload.name)
    out.graph_inputs = dict(workload.graph_inputs)
    out.graph_outputs = dict(workload.graph_outputs)
    for i, k in enumerate(kernels):
        out.add_layer(k)
        out.graph.nodes[k.name]["index"] = i
    for a, b in zip(kernels, kernels[1:]):           # kernels run in this order; edges keep it
        out.add_edge(a.name, b.name, a.outputs[0] if a.outputs else "", a.output_bytes)
    return out


def _kernels_of(members: list[Layer], rules: FusionRules, producer: dict[str, Layer]) -> list[Layer]:
    head, tail = members[0], members[-1]
    inside = {t for m in members for t in m.outputs}
    extra_inputs = [(t, s) for m in members[1:] for t, s in zip(m.inputs, m.input_shapes) if t not in inside]
    in_bytes = head.input_bytes + sum(_nbytes(s, head.dtype_bytes) for _, s in extra_inputs)
    kernel = replace(
        head,
        op="+".join(m.op for m in members),
        inputs=list(head.inputs) + [t for t, _ in extra_inputs],
        input_shapes=list(head.input_shapes) + [s for _, s in extra_inputs],
        outputs=list(tail.outputs), output_shapes=list(tail.output_shapes),
        macs=sum(m.macs for m in members), ops=sum(m.ops for m in members),
        params=sum(m.params for m in members), weight_bytes=sum(m.weight_bytes for m in members),
        input_bytes=in_bytes, output_bytes=tail.output_bytes,
        attrs={**head.attrs, "members": [m.name for m in members]},
    )
    c = head.conv
    if c is not None and 1 < c.groups < c.c:
        if not rules.split_grouped_conv:
            # runtimes run a grouped convolution as its own kernel (per-group GEMMs with a short
            # reduction): a class of its own, so that its efficiency is not a dense conv's
            return [replace(kernel, op_class="grouped_conv")]
    else:
        return [kernel]
    # Split + one conv per group + Concat (TFLite's conversion of a grouped convolution)
    g = c.groups
    dims = replace(c, c=c.c // g, k=c.k // g, groups=1)
    cls = "pointwise_conv" if dims.r == dims.s == 1 and dims.stride_h == dims.stride_w == 1 else "conv"
    split = replace(kernel, name=f"{head.name}/split", op="Split", op_class="data_movement", conv=None,
                    macs=0, ops=0, params=0, weight_bytes=0, input_bytes=head.input_bytes,
                    output_bytes=head.input_bytes, attrs={"members": [head.name], "split_of": head.name})
    per_group = [replace(kernel, name=f"{head.name}/g{i}", op_class=cls, conv=dims,
                         macs=kernel.macs // g, ops=kernel.ops // g, params=kernel.params // g,
                         weight_bytes=kernel.weight_bytes // g, input_bytes=in_bytes // g,
                         output_bytes=kernel.output_bytes // g,
                         attrs={**kernel.attrs, "group_of": head.name}) for i in range(g)]
    concat = replace(kernel, name=f"{head.name}/concat", op="Concat", op_class="data_movement", conv=None,
                     macs=0, ops=0, params=0, weight_bytes=0, input_bytes=kernel.output_bytes,
                     output_bytes=kernel.output_bytes, attrs={"members": [head.name], "concat_of": head.name})
    return [split, *per_group, concat]


def _nbytes(shape, dtype_bytes: int) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n * dtype_bytes
