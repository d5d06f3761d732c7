"""``codesign profile``: measure kernels on this machine into the kernel cache.

Registered by ``codesign.cli`` as a plain function.  Kernels come from ``--model`` networks
(their exact fused kernels: exact hits later) and from ``--samples`` random configurations
(coverage for the per-class regressors).  Every measurement is committed as it is taken;
Ctrl-C stops the run, keeps what was measured and exits with code 130.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from codesign.cli.common import Backend, OptLevel
from hwmodels.errors import CodesignError


def profile(
    target: Annotated[str, typer.Option("--target", "-t", help="the machine being measured: host (this machine)")] = "host",
    backend: Annotated[Backend, typer.Option("--backend", help="onnxruntime (profiler per-node times) or tvm (llvm build, VM time evaluator)")] = Backend.onnxruntime,
    budget_s: Annotated[float, typer.Option("--budget-s", help="stop after this many seconds (what was measured is kept)")] = 300.0,
    cache: Annotated[Optional[Path], typer.Option("--cache", help="kernel cache (SQLite); default: the user cache dir, or $CODESIGN_KERNEL_CACHE")] = None,
    model: Annotated[Optional[list[Path]], typer.Option("--model", "-m", help="also profile every kernel of this ONNX network (repeatable); with 3 or more, the per-network overhead is fitted on them")] = None,
    samples: Annotated[int, typer.Option("--samples", help="random kernel configurations to sample (0 = none)")] = 400,
    seed: Annotated[int, typer.Option("--seed", help="seed of the random kernel sampling")] = 0,
    threads: Annotated[Optional[int], typer.Option("--threads", help="intra-op threads (default: the target's, host = 1)")] = None,
    opt_level: Annotated[OptLevel, typer.Option("--opt-level", help="onnxruntime graph optimization level")] = OptLevel.all,
    repeats: Annotated[int, typer.Option("--repeats", help="timed runs per kernel (after warm-up)")] = 30,
    warmup: Annotated[int, typer.Option("--warmup", help="untimed warm-up runs per kernel")] = 5,
) -> None:
    """Measure kernels on this machine (onnxruntime or TVM) into the kernel cache used by --cost-model measured."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from codesign.frontends.onnx_frontend import load_onnx, workload_from_model
    from hwmodels.targets import load_target
    from hwmodels.kernel_sampling import blocks_from_workloads, random_blocks
    from hwmodels.kernel_store import KernelStore
    from hwmodels.measured import run_profile, tvm_blocks

    console = Console(stderr=True)
    backend, opt_level = backend.value, opt_level.value
    tgt = load_target(target)
    if tgt.name != "host":
        raise CodesignError(f"--target {target!r}: profile measures the machine it runs on; use --target host "
                            f"(or calibrate {tgt.name!r} from measurements taken on that device)")
    if budget_s <= 0 or samples < 0 or repeats < 1 or warmup < 0:
        raise CodesignError("--budget-s and --repeats must be positive; --samples and --warmup must be >= 0")
    nthreads = threads if threads is not None else int(tgt.threads or 1)
    workloads = [load_onnx(p) for p in (model or [])]
    if backend == "onnxruntime":
        blocks = blocks_from_workloads(workloads, nthreads, opt_level) + random_blocks(samples, seed)
    else:
        rnd = [workload_from_model(b.model, name=b.key) for b in random_blocks(samples, seed)]
        blocks = tvm_blocks(workloads + rnd)
    store = KernelStore(cache)
    console.print(f"profiling {len(blocks)} kernel blocks with {backend} on {tgt.name} "
                  f"({nthreads} thread(s), opt {opt_level if backend == 'onnxruntime' else 'llvm'}) into {store.path}")
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        task = bar.add_task("kernels", total=len(blocks))

        def on_progress(done, total, label):
            bar.update(task, completed=done, description=f"kernels ({label[:40]})")

        summary = run_profile(store, blocks, backend, nthreads, opt_level, budget_s, repeats, warmup, on_progress)
    if backend == "onnxruntime" and len(model or []) >= 3 and not summary["interrupted"]:
        from hwmodels.measured import calibrate_network_overhead

        fit = calibrate_network_overhead(store, [(load_onnx(p), p) for p in model], nthreads, opt_level, min_nets=3)
        if fit:
            console.print(f"network overhead fitted on {fit['n']} --model networks: {fit['per_run_us']:.1f} us/run, "
                          f"{fit['per_node_us']:.2f} us/kernel, kernel-sum scale {fit['scale']:.3f} "
                          f"(median fit error {fit['median_abs_rel_err']:.1%})")
    store.close()
    console.print(f"stored {summary['kernels_stored']} new kernel measurements "
                  f"({summary['already_known']} already in the cache, {summary['failed']} blocks failed) in "
                  f"{summary['elapsed_s']:.0f} s; the cache now holds {summary['stored_total']} kernels for this machine")
    if summary["budget_exhausted"]:
        console.print(f"budget of {budget_s:.0f} s reached after {summary['profiled']} of {len(blocks)} blocks; "
                      "run again to continue (measured blocks are skipped)")
    if summary["interrupted"]:
        console.print("interrupted: everything measured so far is kept in the cache")
        raise KeyboardInterrupt   # the CLI's main maps it to exit code 130
