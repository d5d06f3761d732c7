"""``codesign profile``: measure kernels on this machine into the kernel cache.

Registered by ``codesign.cli`` as a plain function.  Kernels come from ``--model`` networks
(their exact fused kernels: exact hits later) and from ``--samples`` random configurations
(coverage for the per-class regressors).  Every measurement is committed as it is taken;
Ctrl-C stops the run, keeps what was measured and exits with code 130.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from codesign.errors import CodesignError


def profile(
    target: str = typer.Option("host", "--target", "-t", help="the machine being measured: host (this machine)"),
    backend: str = typer.Option("onnxruntime", "--backend", help="onnxruntime (profiler per-node times) or tvm (llvm build, VM time evaluator)"),
    budget_s: float = typer.Option(300.0, "--budget-s", help="stop after this many seconds (what was measured is kept)"),
    cache: Optional[Path] = typer.Option(None, "--cache", help="kernel cache (SQLite); default: the user cache dir, or $CODESIGN_KERNEL_CACHE"),
    model: Optional[list[Path]] = typer.Option(None, "--model", "-m", help="also profile every kernel of this ONNX network (repeatable); with 3 or more, the per-network overhead is fitted on them"),
    samples: int = typer.Option(400, "--samples", help="random kernel configurations to sample (0 = none)"),
    seed: int = typer.Option(0, "--seed", help="seed of the random kernel sampling"),
    threads: Optional[int] = typer.Option(None, "--threads", help="intra-op threads (default: the target's, host = 1)"),
    opt_level: str = typer.Option("all", "--opt-level", help="onnxruntime graph optimization: disable | basic | extended | all"),
    repeats: int = typer.Option(30, "--repeats", help="timed runs per kernel (after warm-up)"),
    warmup: int = typer.Option(5, "--warmup", help="untimed warm-up runs per kernel"),
) -> None:
    """Measure kernels on this machine (onnxruntime or TVM) into the kernel cache used by --cost-model measured."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from codesign.frontends.onnx_frontend import load_onnx, workload_from_model
    from codesign.targets import load_target
    from hwmodels.kernel_sampling import blocks_from_workloads, random_blocks
    from hwmodels.kernel_store import KernelStore
    from hwmodels.measured import BACKENDS, run_profile, tvm_blocks

    console = Console(stderr=True)
    if backend not in BACKENDS:
        raise CodesignError(f"--backend {backend!r}: use one of {', '.join(BACKENDS)}")
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

        fit = calibrate_network_overhead(store, list(model), nthreads, opt_level, min_nets=3)
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
