"""Measure kernels into a ``KernelStore`` through any kernel backend, on a shared machine.

``run_profile(store, backend, blocks)``:

1. the per-network overhead (``backend.measure_overhead``; measured again before every later
   pass, the lower fit kept);
2. pass 1 over every block not yet measured in a quiet moment (earlier runs included); each
   block is measured between two canary samples (``hwmodels.quiet.QuietGate``);
3. later passes over the blocks whose measurement fell in a busy spell, until none is left,
   ``passes`` is reached or ``budget_s`` is spent.  A kernel keeps its fastest measurement, and
   a kernel measured quietly once (in any block) is not timed again.

Every block's kernels are committed as it is measured; a ``KeyboardInterrupt`` stops the
loop and the summary (``interrupted=True``) is returned with everything measured so far kept.
"""
from __future__ import annotations

import time

from hwmodels.kernel_backend import Block, KernelBackend
from hwmodels.kernel_store import KernelRecord, KernelStore, machine_fingerprint


def run_profile(store: KernelStore, backend: KernelBackend, blocks: list[Block], budget_s: float | None = None,
                passes: int = 4, gate=None, on_progress=None, measure_overhead: bool = True,
                wait_s: float = 0.0) -> dict:
    """Measure ``blocks`` into ``store``; returns a summary dict (see the module docstring).

    ``gate``: a ``QuietGate`` (made here when None; ``False`` measures without one, every
    measurement then counts as quiet).  With ``wait_s`` > 0, after a busy canary the next block
    first waits up to ``wait_s`` for a quiet one (sleeping; off by default: on this project's
    shared machine quiet spells were rare enough that waiting cost more blocks than it saved).  ``on_progress(done, total, label)`` after each block.
    When the budget runs out, ``summary["next"]`` is the index in ``blocks`` of the block that
    was not reached (a caller measuring in chunks starts the next chunk there)."""
    from hwmodels.quiet import QuietGate

    machine = machine_fingerprint(backend.name)
    key = (backend.name, machine, backend.threads, backend.variant)
    start = time.perf_counter()
    summary = {"blocks": len(blocks), "profiled": 0, "kernels_stored": 0, "already_known": 0, "failed": 0,
               "remeasured": 0, "quiet_blocks": 0, "interrupted": False, "budget_exhausted": False, "overhead": None,
               "machine": machine, "backend": backend.name, "threads": backend.threads, "opt_level": backend.variant,
               "passes_done": 0, "block_s": 0.0}
    if gate is None:
        gate = QuietGate()
    gate = gate or None

    def out_of_time() -> bool:
        return budget_s is not None and time.perf_counter() - start > budget_s

    try:
        if measure_overhead:
            _measure_overhead(store, backend, key, gate, summary)
        todo = []
        for b in blocks:
            if store.has_block(backend.block_hash(b), *key, quiet_only=True):
                summary["already_known"] += 1
            else:
                todo.append(b)
        total = len(todo)
        done = 0
        quiet_kernels = store.quiet_hashes(*key)     # kernels not worth timing again
        summary["next"] = 0
        for pass_no in range(max(passes, 1)):
            busy = []
            for b in todo:
                if out_of_time():
                    summary["budget_exhausted"] = True
                    summary["next"] = blocks.index(b)
                    break
                if gate is not None and wait_s > 0 and gate.last > gate.threshold:
                    gate.wait_quiet(min(wait_s, max(budget_s - (time.perf_counter() - start), 0)) if budget_s else wait_s)
                quiet = _measure(store, backend, b, key, gate, summary, pass_no == 0, quiet_kernels)
                if quiet is False:
                    busy.append(b)
                done += 1
                if on_progress is not None:
                    on_progress(done, total, b.key)
            if summary["budget_exhausted"]:
                break
            summary["passes_done"] = pass_no + 1
            if not busy:
                break
            if measure_overhead:
                _measure_overhead(store, backend, key, gate, summary)
            todo = busy
            total += len(busy)
    except KeyboardInterrupt:
        summary["interrupted"] = True
    summary["elapsed_s"] = time.perf_counter() - start
    if summary["profiled"] and summary["block_s"] > 0:      # what making one kernel an exact hit costs here
        store.set_profile_cost_s(*key, summary["block_s"] / summary["profiled"])
    summary["stored_total"] = store.count(*key)
    summary["stored_quiet"] = store.count(*key, quiet_only=True)
    return summary


def _measure_overhead(store: KernelStore, backend: KernelBackend, key: tuple, gate, summary: dict) -> None:
    """Measure the per-network overhead again; keep whichever of the stored and the new chain fit is
    lower for a 20-kernel network (a busy spell inflates both terms).  A fit on whole networks
    (source "networks") is the user's choice and is kept."""
    old = store.overhead(*key)
    if old is not None and old["source"] != "chain":
        return
    per_run, per_node = backend.measure_overhead(gate)
    if old is None or per_run + 20 * per_node < old["per_run_us"] + 20 * old["per_node_us"]:
        store.put_overhead(*key, per_run, per_node, 1, 1.0, "chain")
        summary["overhead"] = (per_run, per_node)


def _measure(store: KernelStore, backend: KernelBackend, block: Block, key: tuple, gate, summary: dict,
             first: bool, quiet_kernels: set) -> bool | None:
    """Measure one block into the store (its kernels not yet measured quietly): True/False = quiet
    or not, None = it failed.  ``quiet_kernels`` grows with what was measured quietly."""
    t0 = time.perf_counter()
    skip = frozenset(quiet_kernels)
    try:
        if gate is not None:
            timings, quiet = gate.measure(lambda: backend.measure_block(block, skip))
        else:
            timings, quiet = backend.measure_block(block, skip), True
        quiet = quiet or not timings          # nothing left to measure in it
        if first:
            summary["block_s"] += time.perf_counter() - t0
    except KeyboardInterrupt:
        raise
    except Exception:   # one bad block must not stop a long profile
        if first:
            summary["failed"] += 1
        return None
    name, machine, threads, variant = key
    for t in timings:
        k = t.kernel
        store.put(KernelRecord(k.sig_hash, k.kind, k.op, k.signature, k.features, t.us, t.spread_us, t.runs,
                               name, machine, threads, variant, quiet), commit=False, keep_faster=True)
    store.mark_block(backend.block_hash(block), name, machine, threads, variant, quiet)   # commits the kernels too
    if quiet:
        quiet_kernels.update(t.kernel.sig_hash for t in timings)
    if first:
        summary["profiled"] += 1
        summary["kernels_stored"] += len(timings)
    else:
        summary["remeasured"] += 1
    summary["quiet_blocks"] += bool(quiet)
    return quiet
