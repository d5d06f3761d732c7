"""``--ray ADDRESS``: measured evaluations as Ray tasks, on this machine (``local``) or a cluster
(``auto``, ``HOST:PORT``, ``ray://HOST:PORT``).

The driver keeps the study, the predictor and the surrogate step; each task runs
``workers.measure`` -- the function an in-process search calls -- on the problem put once into
Ray's object store (its trained supernet included), unpickled once per worker process and
reused.  A worker that dies mid-task is retried by Ray itself (``max_retries``); if it keeps
dying the trial's future says ``WorkerLost`` and the runner re-submits it.
"""
from __future__ import annotations

import os
import socket
import sys
from concurrent.futures import Future
from contextlib import contextmanager

from codesign.search.workers import WorkerLost, measure, shippable, threads_per_worker
from hwmodels.errors import CodesignError

RETRIES = 3
_CACHE: dict[str, object] = {}      # per Ray worker process: problem object id -> problem


def _measure_task(problem_ref: list, cand, front_rows: list, threads: int):
    """A Ray task: the problem from the object store (once per worker process), then ``measure``."""
    import ray
    import torch

    torch.set_num_threads(threads)
    key = problem_ref[0].hex()
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = ray.get(problem_ref[0])
    return measure(_CACHE[key], cand, front_rows)


def _reachable(address: str) -> None:
    """A HOST:PORT with nothing listening fails here in seconds (ray.init would wait a long time)."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise CodesignError(f"--ray {address!r}: expected local, auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise CodesignError(f"--ray {address}: no Ray cluster answers there ({e.strerror or e}); start one with "
                            f"`ray start --head` or use --ray local") from None


@contextmanager
def _quiet_stderr():
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def connect(address: str, cpus: int | None) -> bool:
    """Join (or start, for ``local``) a Ray cluster; True when this call started Ray here."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")     # nothing leaves the machine at run time
    try:
        import ray
    except ImportError:
        raise CodesignError("--ray needs Ray: pip install -e \".[cluster]\"") from None
    if ray.is_initialized():                                   # e.g. a test session's local cluster
        return False
    kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR", configure_logging=True)
    if address == "local":
        ray.init(num_cpus=cpus or os.cpu_count() or 1, **kwargs)
        return True
    if address != "auto":
        _reachable(address)
    try:
        with _quiet_stderr():          # Ray's C++ client prints every failed retry straight to file descriptor 2
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise CodesignError(f"--ray {address}: cannot join a Ray cluster ({' '.join(str(e).split())[:160]}); start "
                            f"one with `ray start --head` or use --ray local; a cluster with token authentication "
                            f"(Ray's default for one ray.init started) also needs RAY_AUTH_MODE=token and its token "
                            f"(RAY_AUTH_TOKEN or ~/.ray/auth_token)") from None
    return True


class RayTasks:
    where = "Ray tasks"

    def __init__(self, problem, address: str, workers: int = 1, started: bool = False):
        import ray

        self._started = connect(address, workers if workers > 1 else None) or started
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.capacity = max(1, cpus if workers <= 1 else min(workers, cpus))
        self._threads = threads_per_worker(self.capacity) if address == "local" else 1
        self._problem = [ray.put(shippable(problem))]
        self._task = ray.remote(num_cpus=1, max_retries=RETRIES)(_measure_task)

    def submit(self, cand, front_rows: list) -> Future:
        import ray

        inner = self._task.remote(self._problem, cand, front_rows, self._threads).future()
        outer: Future = Future()

        def relay(f: Future) -> None:
            e = f.exception()
            if e is None:
                outer.set_result(f.result())
            elif isinstance(e, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                                ray.exceptions.LocalRayletDiedError)):
                outer.set_exception(WorkerLost(str(e).splitlines()[0] if str(e) else "a Ray worker died"))
            elif isinstance(e, ray.exceptions.RayTaskError):
                cause = e.cause if getattr(e, "cause", None) is not None else e
                outer.set_exception(cause)
            else:
                outer.set_exception(e)
        inner.add_done_callback(relay)
        return outer

    def close(self) -> None:
        import ray

        self._problem = None
        if self._started and ray.is_initialized():
            ray.shutdown()
