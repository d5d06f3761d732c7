"""Where measured evaluations run: in the search's own process, in a local process pool
(``--workers N``), or as Ray tasks (``--ray``, codesign.search.ray_workers).

All three call the same function, ``measure``, on the same ``Problem`` (its supernet trained
once by the driver and shipped to each worker once); they differ only in where it runs.  Each
hands back ``concurrent.futures.Future`` objects, so the runner drives every kind alike.  A
worker that dies mid-evaluation (SIGKILL, out of memory) shows up as ``WorkerLost`` on that
trial's future, and the runner re-submits the same candidate.
"""
from __future__ import annotations

import os
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from codesign.search.encoding import Candidate
from codesign.search.fidelity import two_stage
from hwmodels.errors import CodesignError


class WorkerLost(Exception):
    """The process measuring a candidate died before it answered (the candidate is re-submitted)."""


def measure(problem, cand: Candidate, front_rows: list) -> tuple[dict, Candidate, float]:
    """One measured evaluation: (metrics, the candidate as measured, budget cost in full-split units).
    The candidate comes back because nested hardware resolves its accelerator during the evaluation."""
    if problem.cfg.search.fidelity != "two-stage":
        return problem.evaluation.evaluate(cand), cand, 1.0
    m, cost = two_stage(problem, cand, front_rows, problem.cfg.search.low_fidelity_every)
    return m, cand, cost


def threads_per_worker(workers: int) -> int:
    """Torch/BLAS threads each of ``workers`` parallel evaluations may use without oversubscribing."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def shippable(problem):
    """The problem as workers get it: without the driver's console logger (not picklable)."""
    import copy

    state = copy.copy(problem)
    state.log = None
    return state


class InProcess:
    """Evaluations in the driver itself, one at a time (the default)."""

    capacity = 1
    where = "in process"

    def __init__(self, problem):
        self.problem = problem

    def submit(self, cand: Candidate, front_rows: list) -> Future:
        f: Future = Future()
        try:
            f.set_result(measure(self.problem, cand, front_rows))
        except Exception as e:
            f.set_exception(e)
        return f

    def close(self) -> None:
        pass


# ----- a local process pool ----------------------------------------------------------------------
_PROBLEM = None


def _init_worker(blob: bytes, threads: int) -> None:
    """Runs once in each pool process: thread limits before torch starts, then the problem."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    import cloudpickle
    import torch

    torch.set_num_threads(threads)
    global _PROBLEM
    _PROBLEM = cloudpickle.loads(blob)


def _measure_in_worker(cand: Candidate, front_rows: list):
    return measure(_PROBLEM, cand, front_rows)


class LocalPool:
    """``--workers N``: N spawned processes on this machine (spawn, not fork: torch's thread pools
    do not survive a fork).  A pool broken by a dead worker is replaced by a fresh one."""

    where = "local processes"

    def __init__(self, problem, workers: int):
        import cloudpickle

        if workers < 1:
            raise CodesignError(f"--workers {workers}: give 1 or more")
        self.capacity = workers
        self._blob = cloudpickle.dumps(shippable(problem))
        self._threads = threads_per_worker(workers)
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        import multiprocessing

        return ProcessPoolExecutor(self.capacity, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(self._blob, self._threads))

    def submit(self, cand: Candidate, front_rows: list) -> Future:
        try:
            inner = self._pool.submit(_measure_in_worker, cand, front_rows)
        except BrokenProcessPool:        # broken by a death the caller has not seen yet: start afresh
            self.restart()
            inner = self._pool.submit(_measure_in_worker, cand, front_rows)
        outer: Future = Future()

        def relay(f: Future) -> None:
            e = f.exception()
            if isinstance(e, BrokenProcessPool):
                outer.set_exception(WorkerLost(str(e) or "a worker process died"))
            elif e is not None:
                outer.set_exception(e)
            else:
                outer.set_result(f.result())
        inner.add_done_callback(relay)
        return outer

    def restart(self) -> None:
        """After a worker died: every pending evaluation of the old pool failed; the caller re-submits."""
        _stop(self._pool)
        self._pool = self._new_pool()

    def close(self) -> None:
        _stop(self._pool)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Shut a pool down and kill its processes.  A worker SIGKILLed while it held the result queue's
    lock leaves the survivors blocked on it for ever, and the interpreter's exit would wait for them
    (seen: a finished search that never exited); nothing of theirs is still needed here."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.kill()


def make_evaluator(problem, workers: int = 1, ray_address: str | None = None, ray_started: bool = False):
    """``ray_started``: the caller already started Ray for this search (shut down with it)."""
    if ray_address is not None:
        from codesign.search.ray_workers import RayTasks

        return RayTasks(problem, ray_address, workers, ray_started)
    if workers <= 1:
        return InProcess(problem)
    return LocalPool(problem, workers)
