"""The Workload: one networkx DiGraph of layers that every cost model reads.

Frontends (ONNX, torch, TVM Relax) all produce this structure; nothing downstream
re-parses a model file.  Nodes are layer names with a ``Layer`` under the ``layer``
attribute; edges are tensors (``tensor`` name and ``bytes``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import networkx as nx

# Op classes: cost models key their efficiency and energy rules on these.
OP_CLASSES = (
    "conv",            # dense / grouped convolution
    "depthwise_conv",  # groups == in_channels == out_channels/multiplier
    "pointwise_conv",  # 1x1, stride 1, groups 1
    "matmul",          # Gemm / MatMul / batched MatMul
    "pool",
    "norm",            # BatchNorm / LayerNorm / InstanceNorm / GroupNorm
    "elementwise",     # Add, Mul, activations, ...
    "softmax",
    "reduce",
    "data_movement",   # Reshape, Transpose, Concat, Slice, ... (bytes, no math)
    "other",           # not modelled: zero MACs, bytes only
)


@dataclass(frozen=True)
class ConvDims:
    """Static shape of a 2-D convolution (1-D convs are H=1)."""

    n: int          # batch
    c: int          # input channels
    h: int          # input height (unpadded)
    w: int          # input width (unpadded)
    k: int          # output channels
    r: int          # kernel height
    s: int          # kernel width
    p: int          # output height
    q: int          # output width
    stride_h: int = 1
    stride_w: int = 1
    dilation_h: int = 1
    dilation_w: int = 1
    groups: int = 1
    pad_top: int = 0
    pad_left: int = 0
    pad_bottom: int = 0
    pad_right: int = 0

    @property
    def macs(self) -> int:
        return self.n * self.k * self.p * self.q * (self.c // self.groups) * self.r * self.s


@dataclass(frozen=True)
class GemmDims:
    """out[batch, m, n] = sum_k a[batch, m, k] * b[batch, k, n]."""

    batch: int
    m: int
    n: int
    k: int

    @property
    def macs(self) -> int:
        return self.batch * self.m * self.n * self.k


@dataclass
class Layer:
    """One node of the Workload: an operator with static shapes and its costs' inputs."""

    name: str
    op: str                                  # the source op type, e.g. "Conv"
    op_class: str                            # one of OP_CLASSES
    inputs: list[str] = field(default_factory=list)     # activation tensor names
    outputs: list[str] = field(default_factory=list)
    input_shapes: list[tuple[int, ...]] = field(default_factory=list)
    output_shapes: list[tuple[int, ...]] = field(default_factory=list)
    attrs: dict = field(default_factory=dict)
    conv: ConvDims | None = None
    gemm: GemmDims | None = None
    macs: int = 0                            # multiply-accumulates
    ops: int = 0                             # other arithmetic (elementwise, compares, exp...)
    params: int = 0                          # weight + bias elements held by this layer
    weight_bytes: int = 0                    # params at the model's stored precision
    input_bytes: int = 0                     # activations read
    output_bytes: int = 0                    # activations written
    dtype_bytes: int = 4                     # element size of activations in the source model
    modelled: bool = True                    # False: unknown op, kept with bytes only

    @property
    def act_bytes(self) -> int:
        return self.input_bytes + self.output_bytes


class Workload:
    """A network as a DAG of ``Layer`` nodes, in topological order."""

    def __init__(self, name: str, graph: nx.DiGraph | None = None):
        self.name = name
        self.graph = graph if graph is not None else nx.DiGraph()
        self.graph_inputs: dict[str, tuple[int, ...]] = {}
        self.graph_outputs: dict[str, tuple[int, ...]] = {}
        self.weights_read = True          # False: built from shapes only (e.g. an absent external weight file)
        self.notes: list[str] = []        # what the frontend wants the user to know (e.g. weights not read)
        # the bit-widths the model itself fixes (a QDQ model's Q/DQ nodes): a hwmodels.bits.BitAssignment,
        # or None for a float model (then the caller's --bits or the target's default apply)
        self.bits = None
        self.quantized_layers: list[str] = []     # the layers whose bits that model's Q/DQ nodes give

    def add_layer(self, layer: Layer) -> None:
        if layer.name in self.graph:
            raise ValueError(f"duplicate layer name {layer.name!r}")
        self.graph.add_node(layer.name, layer=layer)

    def add_edge(self, src: str, dst: str, tensor: str, nbytes: int) -> None:
        self.graph.add_edge(src, dst, tensor=tensor, bytes=nbytes)

    def layers(self) -> list[Layer]:
        """Layers in a deterministic topological order."""
        order = nx.lexicographical_topological_sort(self.graph, key=self._index_key)
        return [self.graph.nodes[n]["layer"] for n in order]

    def _index_key(self, name: str):
        return self.graph.nodes[name].get("index", 0), name

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers())

    def __len__(self) -> int:
        return self.graph.number_of_nodes()

    @property
    def macs(self) -> int:
        return sum(l.macs for l in self.layers())

    @property
    def params(self) -> int:
        return sum(l.params for l in self.layers())

    @property
    def weight_bytes(self) -> int:
        return sum(l.weight_bytes for l in self.layers())

    @property
    def not_modelled(self) -> list[str]:
        return sorted({l.op for l in self.layers() if not l.modelled})

    def peak_activation_bytes(self) -> int:
        """Peak live activation bytes when layers run in topological order.

        A tensor is live from the layer that produces it (or the start, for graph
        inputs) until its last consumer has run.
        """
        layers = self.layers()
        size: dict[str, int] = {}
        born: dict[str, int] = {}
        dies: dict[str, int] = {}
        for i, l in enumerate(layers):
            for t, shp in zip(l.outputs, l.output_shapes):
                size[t] = _numel(shp) * l.dtype_bytes
                born[t] = i
        for t, shp in self.graph_inputs.items():
            size.setdefault(t, _numel(shp) * 4)
            born.setdefault(t, 0)
        for i, l in enumerate(layers):
            for t in l.inputs:
                if t in born:
                    dies[t] = max(dies.get(t, i), i)
        last = len(layers) - 1
        for t in self.graph_outputs:
            dies[t] = last
        delta = [0] * (len(layers) + 1)   # sweep: +size when born, -size after the last use
        for t, b in born.items():
            delta[b] += size[t]
            delta[dies.get(t, b) + 1] -= size[t]
        peak = live = 0
        for d in delta[:-1]:
            live += d
            peak = max(peak, live)
        return peak


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n
