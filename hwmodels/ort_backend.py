"""The onnxruntime kernel backend (``hwmodels.kernel_backend``): onnxruntime's own fusion, kernels
timed one at a time without its profiler.

* compile: the Workload is rebuilt as an ONNX skeleton (``hwmodels.ort_skeleton``) and
  optimized by onnxruntime (BatchNorm folding, Conv+activation(+residual Add) fusion, NCHWc
  blocked layout with reorders, FusedGemm); its nodes are the kernels
  (``hwmodels.ort_graph``).  The session that optimized it is kept, so measuring the network
  directly costs only its runs.
* blocks: each distinct kernel of the given networks in a one-block model with its producers
  as context (so its inputs arrive in the layout, blocked or not, they have in the network).
* measure_block: every node of the block's optimized graph timed alone
  (``hwmodels.ort_kernel_timer``).
* overhead: chains of trivial nodes run as networks are run.
"""
from __future__ import annotations

from hwmodels.kernel_backend import Block, CompiledNetwork, Kernel, KernelTiming
from hwmodels.ort_graph import RuntimeKernel, map_kernels_to_layers, model_hash, model_tensor_shapes, optimize, optimized_kernels
from hwmodels.ort_skeleton import skeleton_model, tensor_shapes
from hwmodels.workload import Layer, Workload


def _kernel(k: RuntimeKernel, layers: list[str]) -> Kernel:
    return Kernel(k.name, k.op, k.kind, k.sig_hash, k.signature, k.features, layers)


class OnnxruntimeBackend:
    name = "onnxruntime"

    def __init__(self, threads: int = 1, opt_level: str = "all", repeats: int = 40, warmup: int = 5):
        from hwmodels.ort_runner import session_options

        session_options(threads, opt_level)        # a bad level is a CodesignError here, not later
        self.threads, self.variant = int(threads), opt_level
        self.repeats, self.warmup = repeats, warmup
        self._timer = None

    # -- what a workload becomes ---------------------------------------------------------
    def compile(self, workload: Workload | list[Layer]) -> CompiledNetwork:
        layers = workload.layers() if isinstance(workload, Workload) else list(workload)
        model, standins = skeleton_model(layers)
        if not model.graph.node:
            return CompiledNetwork([], standins, None)
        try:
            opt, session = optimize(model, self.threads, self.variant, keep_session=True)
        except Exception:   # the rebuilt graph does not load: every layer is costed apart
            return CompiledNetwork([], layers, None)
        kernels = optimized_kernels(opt, tensor_shapes(layers))
        covers = map_kernels_to_layers(kernels, layers)
        return CompiledNetwork([_kernel(k, covers.get(k.name, [])) for k in kernels], standins, (session, opt))

    def blocks(self, workloads: list[Workload]) -> list[Block]:
        """One block per distinct kernel of ``workloads``: the kernel's layers plus the layers of
        the kernels producing its inputs."""
        seen: set[str] = set()
        out: list[Block] = []
        for wl in workloads:
            cg = self.compile(wl)
            layers = wl.layers()
            by_name = {l.name: l for l in layers}
            order = {l.name: i for i, l in enumerate(layers)}
            owner = {n: k.name for k in cg.kernels for n in k.layers}
            covers = {k.name: k.layers for k in cg.kernels}
            producer = {t: l.name for l in layers for t in l.outputs[:1]}
            for k in cg.kernels:
                if not k.layers or k.sig_hash in seen:
                    continue
                seen.add(k.sig_hash)
                inside = set(k.layers)
                context: set[str] = set()
                for n in k.layers:
                    for t in by_name[n].inputs:
                        p = producer.get(t)
                        if p is not None and p not in inside and p in owner:
                            context.update(covers[owner[p]])
                model, standins = skeleton_model([by_name[n] for n in sorted(inside | context, key=order.get)])
                if standins or not model.graph.node:
                    continue
                out.append(Block(f"{wl.name}:{k.name}", model, f"workload:{wl.name}"))
        return out

    def block_hash(self, block: Block) -> str:
        return model_hash(block.model)

    # -- measuring -----------------------------------------------------------------------
    @property
    def timer(self):
        if self._timer is None:
            from hwmodels.ort_kernel_timer import KernelTimer

            self._timer = KernelTimer(self.threads, self.repeats, self.warmup)
        return self._timer

    def measure_block(self, block: Block, skip: frozenset = frozenset()) -> list[KernelTiming]:
        """The block's kernels timed alone, except those whose signature hash is in ``skip``."""
        opt = optimize(block.model, self.threads, self.variant)
        kernels = optimized_kernels(opt, model_tensor_shapes(block.model))
        todo = [i for i, k in enumerate(kernels) if k.sig_hash not in skip]
        times = self._time_nodes(opt, todo)
        return [KernelTiming(_kernel(kernels[i], []), *t) for i, t in zip(todo, times)]

    def _time_nodes(self, opt, which: list[int] | None = None) -> list[tuple[float, float, int]]:
        from hwmodels.ort_kernel_timer import node_model, runtime_shapes

        nodes = list(opt.graph.node)
        which = range(len(nodes)) if which is None else which
        if not which:
            return []
        shapes = runtime_shapes(opt)
        return [self.timer.time(node_model(opt, nodes[i], shapes)) for i in which]

    def measure_kernels(self, compiled: CompiledNetwork) -> dict[str, float]:
        """Each kernel of a compiled network timed alone, in place: ``{kernel name: us}``."""
        if compiled.handle is None:
            return {}
        _, opt = compiled.handle
        return {node.name: t[0] for node, t in zip(opt.graph.node, self._time_nodes(opt))}

    def measure_overhead(self, gate=None) -> tuple[float, float]:
        from hwmodels.ort_kernel_timer import measure_overhead

        return measure_overhead(self.threads, self.variant, gate)

    def measure_network(self, compiled: CompiledNetwork, gate=None, rounds: int = 3) -> tuple[float, bool]:
        """Microseconds per run of the compiled network (the fastest quarter of its runs, lowest
        quiet round of ``rounds``), and whether a quiet round was seen."""
        from hwmodels.ort_runner import fastest_quarter, random_feeds, time_session
        from hwmodels.quiet import best_of_rounds

        if compiled.handle is None:
            raise ValueError("nothing to run: the network has no kernels onnxruntime can be given")
        session, _ = compiled.handle
        feeds = random_feeds(session)

        def one_round() -> float:
            return fastest_quarter(time_session(session, feeds, 12, 2, 0.02)) * 1e6

        us, _, n_quiet = best_of_rounds(one_round, gate, rounds, stop_after_quiet=1)
        return us, n_quiet > 0
