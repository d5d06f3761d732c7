"""onnxruntime kernels timed one at a time by the wall clock, without onnxruntime's profiler.

Why not the profiler: its per-node ``_kernel_time`` spans the formatting of every input's and
output's shape into strings as well as the kernel, 1-8 us per node depending on the op and its
number of inputs, and is reported in whole microseconds.  On networks of 60 us - 20 ms with
10-30 kernels that bookkeeping is 5-40% of the time, and no single per-node constant removes
it (benchmarks/RESULTS.md, "Measured-kernel model").

How instead: every node of onnxruntime's optimized graph becomes a one-node model (its
initializers copied, its activation inputs -- blocked NCHWc tokens included -- made graph inputs
with the shapes they have at run time) run with optimizations off and io-binding (inputs and
outputs preallocated, so nothing is copied per run).  A node's time is the fastest quarter of
its runs minus the same figure for a trivial one-node model (a 16-element ``Neg``) run in
alternation with it: what is left is the kernel's compute, without the per-run and per-node
framework costs, which the per-network overhead (``measure_overhead``, chains of trivial nodes
run as networks are run) carries instead.
"""
from __future__ import annotations

import numpy as np

from hwmodels.ort_runner import fastest_quarter, make_session, random_feeds, time_session
from hwmodels.ort_skeleton import IR_VERSION, OPSET


def runtime_shapes(opt_model) -> dict[str, tuple[tuple, np.dtype]]:
    """Shape and dtype of every tensor of an optimized model as it is at run time (blocked
    layouts pad channels), from one run with every node output exposed (declared float, as
    every tensor of a skeleton is)."""
    import onnx
    from onnx import helper

    m = onnx.ModelProto()
    m.CopyFrom(opt_model)
    outs = {o.name for o in m.graph.output}
    for n in m.graph.node:
        for o in n.output:
            if o and o not in outs:
                m.graph.output.append(helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None))
                outs.add(o)
    sess = make_session(m.SerializeToString(), 1, "disable")
    feeds = random_feeds(sess)
    names = [o.name for o in sess.get_outputs()]
    found = {k: (v.shape, v.dtype) for k, v in feeds.items()}
    found.update({k: (np.shape(v), np.asarray(v).dtype) for k, v in zip(names, sess.run(names, feeds))})
    return found


def node_model(opt_model, node, shapes: dict):
    """A model running only ``node`` of ``opt_model``."""
    from onnx import helper

    inits = {i.name: i for i in opt_model.graph.initializer}
    inputs, used, seen = [], [], set()
    for i in node.input:
        if not i or i in seen:
            continue
        seen.add(i)
        if i in inits:
            used.append(inits[i])
        else:
            shape, dtype = shapes[i]
            inputs.append(helper.make_tensor_value_info(i, helper.np_dtype_to_tensor_dtype(dtype), list(shape)))
    outputs = [helper.make_tensor_value_info(o, helper.np_dtype_to_tensor_dtype(shapes[o][1]), list(shapes[o][0]))
               for o in node.output if o]
    graph = helper.make_graph([node], "kernel", inputs, outputs, used)
    return helper.make_model(graph, opset_imports=list(opt_model.opset_import), ir_version=opt_model.ir_version)


def trivial_model(k: int = 1, width: int = 16):
    """A chain of ``k`` 16-element Neg nodes: no compute to speak of, only framework costs."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Neg", [f"t{i}"], [f"t{i + 1}"], name=f"neg{i}") for i in range(k)]
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [1, width])],
                          [helper.make_tensor_value_info(f"t{k}", TensorProto.FLOAT, [1, width])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)


def bound_runner(session, seed: int = 0):
    """``run()`` for ``session`` with inputs and outputs bound to preallocated buffers."""
    import onnxruntime as ort

    binding = session.io_binding()
    keep = []
    for name, arr in random_feeds(session, seed).items():
        v = ort.OrtValue.ortvalue_from_numpy(arr)
        keep.append(v)
        binding.bind_ortvalue_input(name, v)
    for o in session.get_outputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in o.shape]
        v = ort.OrtValue.ortvalue_from_numpy(np.zeros(shape, _np_dtype(o.type)))
        keep.append(v)
        binding.bind_ortvalue_output(o.name, v)

    def run():
        session.run_with_iobinding(binding)
    run.keep = keep          # the buffers live as long as the runner
    return run


def _np_dtype(ort_type: str):
    from hwmodels.ort_runner import NP_OF

    return NP_OF.get(ort_type, np.float32)


class KernelTimer:
    """Times one-node models on this machine: ``time(model) -> (us, spread_us, runs)``.

    The model's runs alternate with runs of the trivial model, and the trivial model's fastest
    quarter is subtracted from the model's: both are taken in the same moment, so a busy spell
    that slows the framework's per-call path (which dominates 1-5 us kernels) cancels out
    instead of being charged to the kernel."""

    def __init__(self, threads: int = 1, repeats: int = 40, warmup: int = 5, min_time_s: float = 0.005):
        self.threads, self.repeats, self.warmup, self.min_time_s = threads, repeats, warmup, min_time_s
        self._trivial = bound_runner(make_session(trivial_model().SerializeToString(), threads, "disable"))

    def time(self, model) -> tuple[float, float, int]:
        import time

        run, trivial = bound_runner(make_session(model.SerializeToString(), self.threads, "disable")), self._trivial
        for _ in range(self.warmup):
            run()
            trivial()
        ks, ts = [], []
        end = time.perf_counter() + self.min_time_s
        while len(ks) < self.repeats or (time.perf_counter() < end and len(ks) < 20 * self.repeats):
            t0 = time.perf_counter()
            run()
            t1 = time.perf_counter()
            trivial()
            t2 = time.perf_counter()
            ks.append(t1 - t0)
            ts.append(t2 - t1)
        k = np.asarray(ks) * 1e6
        us = fastest_quarter(k) - fastest_quarter(np.asarray(ts) * 1e6)
        return max(us, 0.01), float(np.median(np.abs(k - np.median(k)))), len(k)


def measure_overhead(threads: int = 1, opt_level: str = "all", gate=None, rounds: int = 5,
                     lengths=(1, 8, 16, 32, 64)) -> tuple[float, float]:
    """``per_run_us + per_node_us * kernels``: what a network run costs beyond its kernels' compute.

    Chains of ``k`` trivial nodes are run as networks are (``session.run`` with numpy inputs,
    the target's threads and optimization level), ``rounds`` times each (each length keeps its
    fastest round; with a ``QuietGate`` the rounds are spread over quiet moments), and the
    fastest-quarter latency is fitted as ``per_run + per_node * k``."""
    best = {k: float("inf") for k in lengths}
    sessions = {k: make_session(trivial_model(k).SerializeToString(), threads, opt_level) for k in lengths}
    feeds = {k: random_feeds(s) for k, s in sessions.items()}
    for _ in range(rounds):
        if gate is not None:
            gate.wait_quiet(max_wait_s=0.5)
        for k in lengths:
            x = np.asarray(time_session(sessions[k], feeds[k], 100, 10, 0.01)) * 1e6
            best[k] = min(best[k], fastest_quarter(x))
    A = np.vstack([np.ones(len(lengths)), np.asarray(lengths, float)]).T
    per_run, per_node = np.linalg.lstsq(A, np.array([best[k] for k in lengths]), rcond=None)[0]
    return float(per_run), float(per_node)
