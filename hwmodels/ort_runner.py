"""onnxruntime sessions and wall-clock timing (the ground truth the cost models are judged by).

``measure_onnx_latency_ms(path)`` creates a CPU session with the settings the ``host`` target
models (1 intra-op thread, ORT_ENABLE_ALL, sequential execution), feeds random inputs of the
model's static shapes, warms up, then times ``repeats`` calls of ``session.run``.  Its
``fast_ms`` -- the mean of the fastest quarter of the runs -- is the figure kernels and
networks are compared by: on a shared machine other processes only ever add time.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from hwmodels.errors import CodesignError

DEFAULT_THREADS = 1
DEFAULT_OPT_LEVEL = "all"
_OPT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
               "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}
NP_OF = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
          "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
          "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}


def session_options(threads: int = DEFAULT_THREADS, opt_level: str = DEFAULT_OPT_LEVEL,
                    profile_prefix: str | None = None, optimized_path: str | None = None):
    import onnxruntime as ort

    if opt_level not in _OPT_LEVELS:
        raise CodesignError(f"unknown onnxruntime optimization level {opt_level!r}; use one of {', '.join(_OPT_LEVELS)}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _OPT_LEVELS[opt_level])
    so.log_severity_level = 3
    if threads == 1:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    if optimized_path:
        so.optimized_model_filepath = optimized_path
    return so


def make_session(model, threads: int = DEFAULT_THREADS, opt_level: str = DEFAULT_OPT_LEVEL, **kw):
    """``model``: a path or serialized bytes."""
    import onnxruntime as ort

    src = str(model) if isinstance(model, (str, Path)) else model
    try:
        return ort.InferenceSession(src, session_options(threads, opt_level, **kw), providers=["CPUExecutionProvider"])
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CodesignError(f"onnxruntime cannot load {model if isinstance(model, (str, Path)) else 'the model'}: {first[:300]}") from None


def random_feeds(session, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
        dt = NP_OF.get(i.type, np.float32)
        if np.issubdtype(dt, np.floating):
            feeds[i.name] = rng.standard_normal(shape).astype(dt)
        else:
            feeds[i.name] = np.zeros(shape, dtype=dt)
    return feeds


def robust_median(samples) -> tuple[float, float, int]:
    """Median after rejecting points more than 3 MADs from the median: (median, mad, kept)."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        return float("nan"), float("nan"), 0
    med = float(np.median(x))
    mad = float(np.median(np.abs(x - med))) or 1e-12
    kept = x[np.abs(x - med) <= 3 * 1.4826 * mad]
    if kept.size == 0:
        kept = x
    return float(np.median(kept)), float(np.median(np.abs(kept - np.median(kept)))), int(kept.size)


def fastest_quarter(samples) -> float:
    """Mean of the fastest quarter of ``samples`` (interruptions only ever add time; the mean keeps
    resolution a minimum would lose)."""
    x = np.sort(np.asarray(samples, dtype=float))
    return float(x[: max(1, x.size // 4)].mean()) if x.size else float("nan")


def time_session(session, feeds, repeats: int, warmup: int, min_time_s: float = 0.0,
                 max_time_s: float = 10.0, with_cpu: bool = False):
    """Seconds per ``session.run(None, feeds)`` call (or per call of ``session()`` when it is a
    plain callable and ``feeds`` is None): ``warmup`` untimed calls, then at least ``repeats``
    timed calls (more, up to ``max_time_s``, until ``min_time_s`` has been spent).
    ``with_cpu`` also returns the calling thread's CPU seconds per call: ``(wall, cpu)``."""
    if feeds is None and callable(session):
        run = session
    else:
        def run():
            session.run(None, feeds)
    for _ in range(warmup):
        run()
    times, cpu = [], []
    start = time.perf_counter()
    while True:
        c0 = time.thread_time()
        t0 = time.perf_counter()
        run()
        t1 = time.perf_counter()
        cpu.append(time.thread_time() - c0)
        times.append(t1 - t0)
        spent = time.perf_counter() - start
        if (len(times) >= repeats and spent >= min_time_s) or spent >= max_time_s:
            break
    return (times, cpu) if with_cpu else times


def measure_onnx_latency_ms(path, threads: int = DEFAULT_THREADS, repeats: int = 50, warmup: int = 10,
                            opt_level: str = DEFAULT_OPT_LEVEL, min_time_s: float = 0.3,
                            max_time_s: float = 20.0, rounds: int = 1, gate=None) -> dict:
    """Measure one whole-network inference with onnxruntime on this machine (wall clock).

    Returns ``{"median_ms", "fast_ms", "min_ms", "mean_ms", "mad_ms", "cpu_median_ms", "repeats",
    "kept", "threads", "opt_level", "execution_mode", "samples_ms"}``.

    ``median_ms``: median after 3-MAD outlier rejection.  ``fast_ms``: mean of the fastest
    quarter of the runs -- on a shared machine other processes only ever add time, so this is
    the reproducible figure (and what the measured-kernel model's kernel times are, too).
    ``cpu_median_ms``: the calling thread's CPU time per run (with 1 thread onnxruntime runs
    the graph on the calling thread).

    ``rounds > 1`` times the session that many times (each round as above; with a
    ``hwmodels.quiet.QuietGate`` between two canary samples): ``fast_ms`` is then the lowest
    quiet round's (the lowest round's when none was quiet), the other figures are over all
    runs, and ``rounds`` / ``quiet_rounds`` say how many there were.
    """
    sess = make_session(path, threads, opt_level)
    feeds = random_feeds(sess)
    ms, cpu, fast_quiet, fast_any, n_quiet = [], [], [], [], 0
    for _ in range(max(int(rounds), 1)):
        q1 = gate.sample() if gate is not None else 1.0
        times, c = time_session(sess, feeds, repeats, warmup, min_time_s, max_time_s, with_cpu=True)
        quiet = gate.quiet(q1, gate.sample()) if gate is not None else True
        ms += [t * 1e3 for t in times]
        cpu += c
        fast_any.append(fastest_quarter(times) * 1e3)
        if quiet:
            n_quiet += 1
            fast_quiet.append(fast_any[-1])
    med, mad, kept = robust_median(ms)
    return {"median_ms": med, "fast_ms": min(fast_quiet or fast_any), "min_ms": float(np.min(ms)),
            "mean_ms": float(np.mean(ms)), "mad_ms": mad, "cpu_median_ms": float(np.median(cpu) * 1e3),
            "repeats": len(ms), "kept": kept, "threads": threads, "opt_level": opt_level,
            "execution_mode": "sequential", "samples_ms": ms, "rounds": len(fast_any), "quiet_rounds": n_quiet}
