"""Is the machine quiet right now?  A canary kernel timed before and after each measurement.

On a shared machine the same kernel runs 1.3-2x slower for spells of a fraction of a second to
tens of seconds (other processes on the other core, or on the host's sibling hyper-thread;
the slow-down reaches CPU time too, so ``thread_time`` does not remove it), and by different
factors for different kernels (memory-bound reorders ~1.2x, 3-us kernels ~1.8x), so a canary
cannot *correct* a measurement -- it can only say whether it was taken in a quiet moment.
``QuietGate.sample()`` times a small fixed convolution (a few hundred microseconds in all)
and returns its slow-down relative to the fastest figure this gate has seen; a measurement
whose canaries before and after are both within ``threshold`` counts as quiet.  Profiling
re-measures what was measured in a busy spell; whole-network measurements keep their fastest
quiet round.
"""
from __future__ import annotations

import time

import numpy as np

DEFAULT_THRESHOLD = 1.10


class QuietGate:
    """``sample() -> slow-down``; ``quiet(*slowdowns)``; ``wait_quiet(max_wait_s)``."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, warm_samples: int = 5):
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper

        from hwmodels.ort_runner import session_options
        from hwmodels.ort_skeleton import IR_VERSION, OPSET

        rng = np.random.default_rng(0)
        w = numpy_helper.from_array((rng.random((32, 32, 3, 3)) * 0.1).astype(np.float32), "w")
        g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1] * 4)], "canary",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 28, 28])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
        self._session = ort.InferenceSession(model.SerializeToString(), session_options(1, "all"),
                                             providers=["CPUExecutionProvider"])
        self._feeds = {"x": rng.standard_normal((1, 32, 28, 28)).astype(np.float32)}
        self.threshold = float(threshold)
        self.best_us = float("inf")
        self.samples = 0
        self.quiet_samples = 0
        self.last = 1.0                 # the latest slow-down sampled
        for _ in range(warm_samples):
            self.sample()

    def sample(self) -> float:
        """The canary's current time over the fastest seen (1.0 = as fast as ever)."""
        ts = []
        for _ in range(6):
            t0 = time.perf_counter()
            self._session.run(None, self._feeds)
            ts.append(time.perf_counter() - t0)
        us = float(np.mean(sorted(ts)[:2])) * 1e6
        self.best_us = min(self.best_us, us)
        q = us / self.best_us
        self.last = q
        self.samples += 1
        self.quiet_samples += q <= self.threshold
        return q

    def quiet(self, *slowdowns: float) -> bool:
        return max(slowdowns) <= self.threshold

    def wait_quiet(self, max_wait_s: float = 5.0, poll_s: float = 0.1) -> bool:
        """Sleep until the canary says quiet (True) or ``max_wait_s`` passes (False)."""
        end = time.perf_counter() + max_wait_s
        while True:
            if self.sample() <= self.threshold:
                return True
            if time.perf_counter() >= end:
                return False
            time.sleep(poll_s)

    def measure(self, fn):
        """``(fn(), quiet)``: ``fn`` run between two canary samples."""
        q1 = self.sample()
        value = fn()
        q2 = self.sample()
        return value, self.quiet(q1, q2)


def best_of_rounds(fn, gate: QuietGate | None, rounds: int, stop_after_quiet: int = 0) -> tuple[float, int, int]:
    """The lowest of ``rounds`` calls of ``fn() -> float`` measured in quiet moments (the lowest of
    all when none was quiet).  Returns ``(value, rounds_done, quiet_rounds)``; with
    ``stop_after_quiet`` > 0 it stops once that many quiet rounds were seen."""
    quiet_best, any_best, done, n_quiet = float("inf"), float("inf"), 0, 0
    for _ in range(rounds):
        if gate is None:
            v, q = fn(), True
        else:
            v, q = gate.measure(fn)
        done += 1
        any_best = min(any_best, v)
        if q:
            n_quiet += 1
            quiet_best = min(quiet_best, v)
            if stop_after_quiet and n_quiet >= stop_after_quiet:
                break
    return (quiet_best if n_quiet else any_best), done, n_quiet
