"""``codesign profile``: measure kernels on this machine into the kernel cache.

Registered by ``codesign.cli`` as a plain function.  Kernels come from ``--model`` networks
(their exact fused kernels: exact hits later) and from ``--samples`` random configurations
(coverage for the per-class regressors).  Each kernel is timed alone by the wall clock, between
two canary samples; what was measured while the machine was busy is measured again in later
passes (``--passes``), and a rerun continues with what is still missing or was never measured
quietly.  Every measurement is committed as it is taken; Ctrl-C stops the run, keeps what was
measured and exits with code 130.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from codesign.cli.common import Backend, OptLevel
from hwmodels.errors import CodesignError


def profile(
    target: Annotated[str, typer.Option("--target", "-t", help="the machine being measured: host (this machine)")] = "host",
    backend: Annotated[Backend, typer.Option("--backend", help="onnxruntime (each optimized-graph node timed alone) or tvm (llvm build, VM time evaluator)")] = Backend.onnxruntime,
    budget_s: Annotated[float, typer.Option("--budget-s", help="stop after this many seconds (what was measured is kept)")] = 300.0,
    cache: Annotated[Optional[Path], typer.Option("--cache", help="kernel cache (SQLite); default: the user cache dir, or $CODESIGN_KERNEL_CACHE")] = None,
    model: Annotated[Optional[list[Path]], typer.Option("--model", "-m", help="also profile every kernel of this ONNX network (repeatable)")] = None,
    fit_overhead: Annotated[bool, typer.Option("--fit-overhead", help="fit the per-network overhead on the --model networks (3 or more) measured whole, instead of on chains of trivial kernels")] = False,
    passes: Annotated[int, typer.Option("--passes", help="passes over the blocks measured while the machine was busy")] = 4,
    samples: Annotated[int, typer.Option("--samples", help="random kernel configurations to sample (0 = none)")] = 400,
    seed: Annotated[int, typer.Option("--seed", help="seed of the random kernel sampling")] = 0,
    threads: Annotated[Optional[int], typer.Option("--threads", help="intra-op threads (default: the target's, host = 1)")] = None,
    opt_level: Annotated[OptLevel, typer.Option("--opt-level", help="onnxruntime graph optimization level")] = OptLevel.all,
    repeats: Annotated[int, typer.Option("--repeats", help="timed runs per kernel (after warm-up)")] = 40,
    warmup: Annotated[int, typer.Option("--warmup", help="untimed warm-up runs per kernel")] = 5,
) -> None:
    """Measure kernels on this machine (onnxruntime or TVM) into the kernel cache used by --cost-model measured."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from codesign.profiling import fit_overhead_on_models, profile_blocks
    from hwmodels.kernel_backend import get_backend
    from hwmodels.kernel_profiling import run_profile
    from hwmodels.kernel_store import KernelStore
    from hwmodels.measured import MeasuredModel
    from hwmodels.targets import load_target

    console = Console(stderr=True)
    backend, opt_level = backend.value, opt_level.value
    tgt = load_target(target)
    if tgt.name != "host":
        raise CodesignError(f"--target {target!r}: profile measures the machine it runs on; use --target host "
                            f"(or calibrate {tgt.name!r} from measurements taken on that device)")
    if budget_s <= 0 or samples < 0 or repeats < 1 or warmup < 0 or passes < 1:
        raise CodesignError("--budget-s, --repeats and --passes must be positive; --samples and --warmup must be >= 0")
    if fit_overhead and len(model or []) < 3:
        raise CodesignError("--fit-overhead needs 3 or more --model networks to fit on")
    nthreads = threads if threads is not None else int(tgt.threads or 1)
    runtime = get_backend(backend, nthreads, opt_level)
    if backend == "onnxruntime":
        runtime.repeats, runtime.warmup = repeats, warmup
    blocks = profile_blocks(runtime, list(model or []), samples, seed)
    store = KernelStore(cache)
    console.print(f"profiling {len(blocks)} kernel blocks with {backend} on {tgt.name} "
                  f"({nthreads} thread(s), {runtime.variant}) into {store.path}")
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        task = bar.add_task("kernels", total=len(blocks))

        def on_progress(done, total, label):
            bar.update(task, completed=done, total=max(total, 1), description=f"kernels ({label[:40]})")

        summary = run_profile(store, runtime, blocks, budget_s, passes, on_progress=on_progress)
    if fit_overhead and not summary["interrupted"]:
        fit = fit_overhead_on_models(MeasuredModel(store=store, backend=backend, threads=nthreads, opt_level=opt_level),
                                     list(model), nthreads)
        if fit:
            console.print(f"network overhead fitted on {fit['n']} --model networks: {fit['per_run_us']:.1f} us/run, "
                          f"{fit['per_node_us']:.2f} us/kernel (median fit error {fit['median_abs_rel_err']:.1%})")
    store.close()
    console.print(f"measured {summary['profiled']} blocks ({summary['already_known']} already measured quietly, "
                  f"{summary['failed']} failed, {summary['remeasured']} measured again after a busy spell) in "
                  f"{summary['elapsed_s']:.0f} s; the cache holds {summary['stored_total']} kernels for this machine, "
                  f"{summary['stored_quiet']} of them measured while it was quiet")
    if summary["budget_exhausted"]:
        console.print(f"budget of {budget_s:.0f} s reached after {summary['profiled']} of {len(blocks)} blocks; "
                      "run again to continue (blocks measured quietly are skipped)")
    if summary["interrupted"]:
        console.print("interrupted: everything measured so far is kept in the cache")
        raise KeyboardInterrupt   # the CLI's main maps it to exit code 130
