"""ONNX import: the real network graphs the onnx wheel ships, and op-level rules."""
import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from hwmodels.errors import CodesignError
from codesign.frontends.onnx_frontend import load_onnx, parse_input_shapes, workload_from_model
from conftest import LIGHT

LIGHT_MODELS = sorted(p.name for p in LIGHT.glob("*.onnx"))
# published MAC counts (multiply-accumulates, conv + fc, 224x224): He et al. 2016 (ResNet-50 3.8-4.1 G,
# 4.09 G for the torchvision/Caffe2 variant with stride on the 1x1), Simonyan & Zisserman (VGG-19 19.6 G)
PUBLISHED = {"light_resnet50.onnx": 4.09e9, "light_vgg19.onnx": 19.6e9}


def _ort_macs(path) -> int:
    """An independent MAC count: run the model in onnxruntime with every intermediate tensor
    exposed, then count Conv/Gemm/MatMul MACs from the *runtime* shapes (no shape inference,
    none of codesign's rules)."""
    model = onnx.load(str(path))
    names = [o for n in model.graph.node for o in n.output if o]
    del model.graph.output[:]
    for nm in names:
        model.graph.output.append(helper.make_empty_tensor_value_info(nm))
    init = {i.name for i in model.graph.initializer}
    feeds = {}
    for i in model.graph.input:
        if i.name in init:
            continue
        shape = [d.dim_value for d in i.type.tensor_type.shape.dim]
        if len(shape) == 1 or i.type.tensor_type.elem_type == TensorProto.INT64:
            continue
        feeds[i.name] = np.zeros(shape, np.float32)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    values = dict(zip(names, sess.run(names, feeds)))
    values.update({i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer})
    total = 0
    for n in model.graph.node:
        if n.op_type == "Conv":
            w, y = values[n.input[1]].shape, values[n.output[0]].shape
            total += math.prod(y) * math.prod(w[1:])
        elif n.op_type == "Gemm":
            a, b = values[n.input[0]].shape, values[n.input[1]].shape
            ta = any(x.name == "transA" and x.i for x in n.attribute)
            tb = any(x.name == "transB" and x.i for x in n.attribute)
            m, k = (a[1], a[0]) if ta else a
            total += m * k * (b[0] if tb else b[1])
        elif n.op_type == "MatMul":
            y = values[n.output[0]].shape
            total += math.prod(y) * values[n.input[0]].shape[-1]
    return total


@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_models_import_and_macs_match_independent_count(name):
    wl = load_onnx(LIGHT / name)
    assert len(wl) > 5
    assert wl.not_modelled == []
    assert wl.macs == _ort_macs(LIGHT / name)
    if name in PUBLISHED:
        assert abs(wl.macs / PUBLISHED[name] - 1) < 0.01
    assert all(l.input_bytes > 0 for l in wl.layers() if l.op in ("Conv", "Gemm"))
    assert wl.params > 0 and wl.peak_activation_bytes() > 0


def test_light_model_count():
    assert len(LIGHT_MODELS) >= 9  # ResNet-50, SqueezeNet, ShuffleNet, Inception v1/v2, VGG-19, DenseNet-121, AlexNet, ZFNet


def test_resnet50_params_and_edges():
    wl = load_onnx(LIGHT / "light_resnet50.onnx")
    # 25.557 M weights + 53 BN x 4 per-channel vectors (scale, bias, mean, var) kept unfolded in this graph
    assert 25.5e6 < wl.params < 25.7e6
    assert wl.graph.number_of_edges() >= len(wl) - 1
    convs = [l for l in wl.layers() if l.op == "Conv"]
    assert len(convs) == 53
    first = convs[0].conv
    assert (first.c, first.k, first.r, first.stride_h, first.p, first.pad_top) == (3, 64, 7, 2, 112, 3)


def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _w(name, shape):
    return onnx.numpy_helper.from_array(np.zeros(shape, np.float32), name)


def test_conv_variants_depthwise_grouped_strided_dilated_padded():
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], group=1, strides=[2, 2], pads=[1, 1, 1, 1]),      # 3x3 s2
        helper.make_node("Conv", ["a", "w2"], ["b"], group=16, pads=[1, 1, 1, 1]),                      # depthwise
        helper.make_node("Conv", ["b", "w3"], ["c"], group=4, dilations=[2, 2], pads=[2, 2, 2, 2]),     # grouped dilated
        helper.make_node("Conv", ["c", "w4"], ["d"]),                                                   # pointwise
    ]
    m = _model(nodes, [_vi("x", [1, 8, 32, 32])], [_vi("d", None)],
               [_w("w1", [16, 8, 3, 3]), _w("w2", [16, 1, 3, 3]), _w("w3", [32, 4, 3, 3]), _w("w4", [8, 32, 1, 1])])
    wl = workload_from_model(m)
    a, b, c, d = wl.layers()
    assert (a.op_class, b.op_class, c.op_class, d.op_class) == ("conv", "depthwise_conv", "conv", "pointwise_conv")
    assert a.conv.p == 16 and a.macs == 16 * 16 * 16 * 8 * 9
    assert b.macs == 16 * 16 * 16 * 1 * 9
    assert c.conv.p == 16 and c.conv.dilation_h == 2 and c.macs == 32 * 16 * 16 * 4 * 9
    assert d.macs == 8 * 16 * 16 * 32
    assert a.params == 16 * 8 * 9 and a.weight_bytes == a.params * 4
    assert wl.graph.has_edge(a.name, b.name) and wl.graph.edges[a.name, b.name]["bytes"] == 16 * 16 * 16 * 4


def test_matmul_batched_gemm_transposed_and_einsum():
    nodes = [
        helper.make_node("MatMul", ["q", "k"], ["s"]),                       # [2,4,16,8] x [2,4,8,16]
        helper.make_node("Gemm", ["x", "w"], ["y"], transB=1),               # [5,32] x [64,32]^T
        helper.make_node("Einsum", ["q", "k"], ["e"], equation="bhid,bhdj->bhij"),
    ]
    m = _model(nodes, [_vi("q", [2, 4, 16, 8]), _vi("k", [2, 4, 8, 16]), _vi("x", [5, 32])],
               [_vi("s", None), _vi("y", None), _vi("e", None)], [_w("w", [64, 32])])
    s, y, e = workload_from_model(m).layers()
    assert s.gemm.batch == 8 and s.macs == 8 * 16 * 16 * 8 and s.params == 0
    assert y.macs == 5 * 64 * 32 and y.params == 64 * 32
    assert e.macs == s.macs


def test_elementwise_pool_norm_softmax_and_data_movement_classes():
    nodes = [
        helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Relu", ["p"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 3, 1]),
        helper.make_node("LayerNormalization", ["t", "g"], ["ln"], axis=-1),
        helper.make_node("Softmax", ["ln"], ["sm"], axis=-1),
        helper.make_node("Concat", ["sm", "sm"], ["cat"], axis=1),
    ]
    m = _model(nodes, [_vi("x", [1, 4, 8, 8])], [_vi("cat", None)], [_w("g", [4])])
    layers = {l.op: l for l in workload_from_model(m).layers()}
    assert layers["MaxPool"].op_class == "pool" and layers["MaxPool"].ops == 4 * 4 * 4 * 4
    assert layers["Relu"].op_class == "elementwise" and layers["Relu"].ops == 64
    assert layers["Transpose"].op_class == "data_movement" and layers["Transpose"].input_bytes == 256
    assert layers["LayerNormalization"].op_class == "norm"
    assert layers["Softmax"].op_class == "softmax"
    assert layers["Concat"].output_bytes == 2 * 256
    assert all(l.macs == 0 for l in layers.values())


def test_unknown_op_is_kept_and_listed_not_dropped():
    nodes = [helper.make_node("Relu", ["x"], ["a"]),
             helper.make_node("MyFancyOp", ["a"], ["b"], domain="com.example"),
             helper.make_node("Relu", ["b"], ["c"])]
    m = _model(nodes, [_vi("x", [1, 16])], [_vi("c", [1, 16])])
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    # the custom op's output has no inferred shape: declare it as a graph value, as exporters do
    m.graph.value_info.append(_vi("b", [1, 16]))
    wl = workload_from_model(m)
    assert len(wl) == 3
    assert wl.not_modelled == ["MyFancyOp"]
    fancy = [l for l in wl.layers() if l.op == "MyFancyOp"][0]
    assert fancy.macs == 0 and fancy.input_bytes == 64 and not fancy.modelled


def test_dynamic_batch_is_one_other_dynamic_dims_need_input_shape():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    m = _model(nodes, [_vi("x", ["batch", 3, 8, 8])], [_vi("y", None)])
    wl = workload_from_model(m)                      # a dynamic batch dimension is taken as 1, and said so
    assert wl.layers()[0].output_shapes == [(1, 3, 8, 8)] and "dynamic batch dimension 'batch' taken as 1" in wl.notes[0]
    m = _model(nodes, [_vi("x", ["batch", 3, "h", 8])], [_vi("y", None)])
    with pytest.raises(CodesignError, match=r"input 'x' has dynamic dims \[batch, 3, h, 8\]; pass --input-shape x=1x3x1x8"):
        workload_from_model(m)
    wl = workload_from_model(m, parse_input_shapes(["x=4x3x8x8"]))
    assert wl.layers()[0].output_shapes == [(4, 3, 8, 8)]


def test_input_shape_spec_errors():
    with pytest.raises(CodesignError, match="bad --input-shape"):
        parse_input_shapes(["x=1xAx3"])
    with pytest.raises(CodesignError, match="bad --input-shape"):
        parse_input_shapes(["1x3"])
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    m = _model(nodes, [_vi("x", ["b", 3])], [_vi("y", None)])
    with pytest.raises(CodesignError, match="names 'z'"):
        workload_from_model(m, {"z": (1, 3)})
    with pytest.raises(CodesignError, match="rank 2"):
        workload_from_model(m, {"x": (1, 3, 4)})


def test_shape_subgraphs_are_folded_not_layers():
    # Shape -> Gather -> Unsqueeze -> Concat -> Reshape, the way exporters write flatten
    idx = onnx.numpy_helper.from_array(np.array(0, np.int64), "idx")
    minus1 = onnx.numpy_helper.from_array(np.array([-1], np.int64), "minus1")
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "idx"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
    ]
    axes = onnx.numpy_helper.from_array(np.array([0], np.int64), "axes")
    m = _model(nodes, [_vi("x", [2, 3, 4])], [_vi("y", None)], [idx, minus1, axes])
    wl = workload_from_model(m)
    assert [l.op for l in wl.layers()] == ["Reshape"]
    assert wl.layers()[0].output_shapes == [(2, 12)]
    assert wl.params == 0  # int64 shape constants are not parameters


def test_peak_activation_memory_counts_live_tensors():
    # x -> a -> b, and x -> c; x stays live until c is computed
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Add", ["x", "b"], ["c"])]
    m = _model(nodes, [_vi("x", [1, 256])], [_vi("c", None)])
    wl = workload_from_model(m)
    # while computing b: x, a, b live (3 x 1 KB); while computing c: x, b, c (a is dead)
    assert wl.peak_activation_bytes() == 3 * 1024
