"""SCALE-Sim's memory system, replicated analytically: what the fold structure leaves out.

``hwmodels.systolic`` gives the folds of each layer on each array; this module replays how
SCALE-Sim's double-buffered SRAMs are filled from and drained to DRAM, in closed form over
``[n_configs, n_layers]``:

* CALC bandwidth (no stalls): ``ReadBufferEstimateBw`` -- an operand whose distinct words fit
  in half its SRAM (50 sets of floor(words/100)) is read once per word; spilling ifmaps are
  estimated with reuse inside one fold (``_spilled_ifmap_reads``).
* USER bandwidth: ``read_buffer`` walks a window of half the SRAM over the prefetch stream and
  refills it back to back (``_user_read``); stalls follow from when refills are ready.
* ofmap ``write_buffer`` drains, exactly (``_ofmap_drains``), for total_cycles_incl_prefetch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwmodels.systolic_geometry import cdiv, skew_row


@dataclass
class MemoryTraffic:
    """Per (config, layer): DRAM words per operand, stall cycles, and the cycle span incl. prefetch."""

    dram_if: np.ndarray
    dram_fl: np.ndarray
    dram_of: np.ndarray
    stalls: np.ndarray
    incl_prefetch: np.ndarray


def memory_traffic(layers, configs, f) -> MemoryTraffic:
    """DRAM traffic and stalls of ``layers`` (SystolicLayers) on ``configs`` given their folds ``f``."""
    R, C, df, K, N, M = f.R, f.C, f.df, f.K, f.N, f.M
    sr, sc, t, rf, cf = f.sr, f.sc, f.t, f.rf, f.cf
    words_if = configs.sram_words(configs.ifmap_kb)[:, None]
    words_fl = configs.sram_words(configs.filter_kb)[:, None]
    words_of = configs.sram_words(configs.ofmap_kb)[:, None]
    user = configs.user_bw[:, None]
    d_if = layers.ifmap_words[None, :]
    v_if = layers.ifmap_valid[None, :]
    d_fl = K * N
    pass_fl = np.select([df == 0, df == 1], [1, rf], cf)

    # CALC: ReadBufferEstimateBw; epoch capacity = 50 sets of floor(words/100)
    e_if, e_fl = words_if // 100, words_fl // 100
    b_if, b_fl = 50 * e_if, 50 * e_fl
    calc_if = np.where(d_if < b_if, d_if, _spilled_ifmap_reads(layers, df, R, C, cf, rf, v_if, d_if))
    calc_fl = np.where(d_fl < b_fl, d_fl, pass_fl * d_fl)
    first_if = np.select([df == 0, df == 1], [R, 0], R - np.minimum(R, sr))
    first_fl = np.select([df == 0, df == 1], [R - np.minimum(R, sr), 0], R)
    start_if = np.where(calc_if < b_if, -cdiv(cdiv(calc_if, e_if) * e_if, 10), first_if - cdiv(b_if, 10))
    start_fl = np.where(calc_fl < b_fl, -cdiv(cdiv(calc_fl, e_fl) * e_fl, 10), first_fl - cdiv(b_fl, 10))

    # USER: read_buffer with a prefetch (fetch) stream; sets of ceil(words/100)
    bw_if, bw_fl, bw_of = (x[:, None] for x in (configs.ifmap_bw, configs.filter_bw, configs.ofmap_bw))
    pre_len_if = np.select([df == 0, df == 1], [rf * M * R, rf * K * R], cf * K * C)   # incl. -1 padding
    pre_len_fl = np.select([df == 0, df == 1], [cf * K * C, cf * K * C], rf * N * R)
    # walk pattern of each operand over its fetch stream (see _user_read)
    F = f.rows_per_fold
    ru = np.minimum(R, sr)
    cu = np.minimum(C, sc)
    stream_if = dict(kind=np.where(df == 2, 1, 0), passes=cf, nb=rf, T=t, ru=ru, cu=cu, F=F,
                     o=np.where(df == 1, 0, R), chunk=R * C, blk=K * C, R=R, C=C, K=K)
    stream_fl = dict(kind=np.select([df == 0, df == 1], [1, 2], 0), passes=cf, nb=rf, T=t, ru=ru, cu=cu, F=F,
                     o=np.where(df == 1, 0, R), chunk=R * C, blk=K * C, R=R, C=C, K=K)
    user_if, _, late_if = _user_read(words_if, bw_if, np.broadcast_to(v_if, t.shape), pre_len_if, stream_if)
    user_fl, _, late_fl = _user_read(words_fl, bw_fl, np.broadcast_to(d_fl, t.shape), pre_len_fl, stream_fl)
    # ofmap SRAM stalls only when it fills while draining: after the first drain (write d+1)
    # the rest beyond what the SRAM holds must leave at bw_of words per cycle.
    d_of = words_of - cdiv(words_of, 2)
    first_drain = f.write_row(np.minimum(d_of + 1, f.of_demand))
    late_of = np.where(f.of_demand > words_of,
                       np.maximum(0, cdiv(np.maximum(f.of_demand - words_of, 0), bw_of) - (f.demand_rows - first_drain)), 0)
    stalls = np.where(user, np.maximum(np.maximum(late_if, late_fl), late_of), 0)
    total = f.compute_cycles + stalls

    # ofmap SRAM (write_buffer): drains of ceil(d/b) lines when more than d = words - ceil(words/2)
    # are held, then empty_all_buffers from the last demand cycle, one line per cycle.
    of_b = np.where(user, bw_of, C)
    of_stop, dram_of = _ofmap_drains(words_of, of_b, f.of_demand, total, f.write_row)
    u_start_if = -np.minimum(cdiv(cdiv(words_if, 2), bw_if), cdiv(pre_len_if, bw_if))
    u_start_fl = -np.minimum(cdiv(cdiv(words_fl, 2), bw_fl), cdiv(pre_len_fl, bw_fl))
    start = np.where(user, np.minimum(u_start_if, u_start_fl), np.minimum(start_if, start_fl))
    return MemoryTraffic(dram_if=np.where(user, user_if, calc_if), dram_fl=np.where(user, user_fl, calc_fl),
                         dram_of=dram_of, stalls=stalls, incl_prefetch=of_stop - start)


def _spilled_ifmap_reads(layers, df, R, Ccols, cf, rf, v_if, d_if):
    """CALC-mode ifmap DRAM reads when the ifmap does not fit in half its SRAM.

    SCALE-Sim's estimate buffer forgets everything every half-buffer of distinct words, so
    reuse survives within a fold's slab but not across folds: reads = passes x sum over folds
    of the slab's distinct words.  ws slab: R consecutive im2col columns (n offsets of the same
    channel overlap as shifted output grids); os slab: R consecutive output pixels and their
    receptive field (halo); is: the halo of the C pixels of a column fold.
    """
    C_in = layers.channels[None, :]
    fh, fw = layers.filt_h[None, :], layers.filt_w[None, :]
    sh, sw = layers.stride_h[None, :], layers.stride_w[None, :]
    P, Q = layers.ofmap_h[None, :], layers.ofmap_w[None, :]
    H, W = layers.ifmap_h[None, :], layers.ifmap_w[None, :]
    # ws: offsets per channel inside one fold, first along a kernel row, then across rows
    n_off = np.maximum(R / C_in, 1.0)
    n_w = np.minimum(n_off, fw)
    n_h = np.maximum(n_off / fw, 1.0)
    rho = (np.minimum(Q * n_w, (Q - 1) * np.minimum(sw, n_w) + n_w) / (Q * n_w)
           * np.minimum(P * n_h, (P - 1) * np.minimum(sh, n_h) + n_h) / (P * n_h))
    ws = cf * v_if * rho
    # os: R output pixels in raster order and the input rows x cols they touch; is: C pixels
    def halo(px):
        px = np.minimum(px, layers.m[None, :])
        n_rows = cdiv(px, Q)
        rows = np.where(px <= Q, fh, np.minimum(H, (n_rows - 1) * sh + fh))
        cols = np.where(px <= Q, np.minimum(W, (px - 1) * sw + fw), W)
        return rows * cols * C_in

    out = np.select([df == 0, df == 1], [ws, cf * rf * halo(R)], cf * halo(Ccols))
    return np.clip(np.rint(out).astype(np.int64), d_if, np.where(df == 2, v_if, cf * v_if))


def _ofmap_drains(words, b, w, total, write_row):
    """(last DRAM write cycle, DRAM words written) of SCALE-Sim's write_buffer.

    A drain fires at the write that makes the held count exceed d and moves L = ceil(d/b)
    lines, one per cycle from that write's cycle.  If b divides d the first drain leaves a
    one-word line that later drains count as b words (SCALE-Sim's -1 correction only looks at
    the last line): drains every d writes, b - 1 extra words.  Otherwise each drain empties
    exactly d + 1 words.  What is left drains from the last demand cycle on.
    """
    d = words - cdiv(words, 2)
    L = cdiv(d, b)
    exact = (d % b) == 0
    n_d = np.where(exact, np.where(w > d, (w - 1) // d, 0), w // (d + 1))
    rem = np.where(exact, w - 1 - n_d * d, w - n_d * (d + 1))
    left = np.where(exact & (n_d > 0), 1 + cdiv(rem, b), cdiv(rem, b))
    stop = total + np.maximum(left, 1) - 1
    last_write = np.where(exact, 1 + n_d * d, n_d * (d + 1))
    mid_end = write_row(np.maximum(last_write, 1)) + L - 1
    stop = np.where(n_d > 0, np.maximum(stop, mid_end), stop)
    written = np.where(exact & (n_d > 0), w + b - 1, w)
    return stop, written


def _edges_in_zones(x0, step, count, period, lo, hi):
    """How many of the window edges x0 + k*step (k < count) fall within [lo, hi] of a
    multiple of ``period`` (a slab boundary).

    SCALE-Sim's window (50 sets of ceil(words/100)) is often just over a multiple of a
    power-of-two slab, so the edges drift slowly across slab boundaries: counted exactly while
    they drift less than two periods, by the equidistributed fraction beyond that.
    """
    x0, step, count, period, lo, hi = np.broadcast_arrays(*(np.asarray(v, dtype=np.int64)
                                                           for v in (x0, step, count, period, lo, hi)))
    width = np.maximum(hi - lo + 1, 0)
    period = np.maximum(period, 1)
    delta = (step + period // 2) % period - period // 2          # signed drift per edge
    r0 = x0 % period
    avg = count * np.minimum(width, period) / period
    still = (delta == 0)
    in_zone0 = ((r0 >= lo) & (r0 <= hi)) | ((r0 - period >= lo) & (r0 - period <= hi))
    slow = np.abs(delta) * count < 2 * period
    out = np.where(still, np.where(in_zone0, count, 0), avg)
    sel = np.nonzero(slow & ~still & (width > 0))              # only these need the exact count
    if sel[0].size:
        d, p, r, l, h, n = (v[sel] for v in (delta, period, r0, lo, hi, count))
        exact = np.zeros(d.shape, dtype=float)
        for m in range(-2, 4):
            a = m * p + l - r
            b = m * p + h - r
            k_lo = np.where(d > 0, -(-a // d), -(-b // d))
            k_hi = np.where(d > 0, b // d, a // d)
            exact += np.maximum(np.minimum(k_hi, n - 1) - np.maximum(k_lo, 0) + 1, 0)
        out = out.astype(float)
        out[sel] = exact
    return np.where(width > 0, out, 0)


def _user_read(words, bw, valid, pre_len, st):
    """USER-bandwidth read buffer (scalesim ``read_buffer``): (DRAM words, refills, stall cycles).

    The fetch stream (the prefetch matrix: ``valid`` words, ``pre_len`` slots incl. -1) is cut
    into sets of E = ceil(words/100); a window of A sets (half the SRAM) is filled before
    cycle 0.  A demanded word outside the window moves it forward by Pn sets, circularly, and
    costs one refill of ceil(half/bw) lines, chained back to back on the DRAM timeline from
    cycle -1 (refill k is ready at -1 + k (lines + 1)).  How the demand walks the stream:

    * kind 0, stream (ws/os ifmap, is filter): the fold slabs in order, once per column fold.
      Where a window edge lands in the R(R-1) words where the diagonal prefetch order
      interleaves two slabs, the next slab's head is evicted early and the window goes round.
    * kind 1, stationary loads (ws filter, is ifmap): each fold loads an R x C chunk in reverse
      order, so a window edge inside a chunk sends the window once round the stream.
    * kind 2, os filter: each column-fold block is re-walked by every row fold; a window edge
      inside a block sends the window once round the stream.
    (A conv ifmap word evicted early may still hit a repeat of its address in another set;
    that rescue is not modelled, so refills are an upper estimate there.)

    Stalls: with y_k = ready(k) - row(k) - 1 SCALE-Sim's row replay (positive stalls counted
    twice) gives S = max(S, 2 y_k - S) per refill; S is taken as max(2 y_1, y_last, 0).
    """
    e = cdiv(words, 100)
    active = cdiv(words, 2)
    prefetch = words - active
    n_sets = valid // e + 1
    A = np.minimum(n_sets, cdiv(active, e))
    Pn = np.maximum(np.minimum(n_sets - A, cdiv(prefetch, e)), 1)
    fits = n_sets <= A
    lines_pf = cdiv(prefetch, bw)
    c = lines_pf + 1
    init_lines = np.minimum(cdiv(active, bw), cdiv(pre_len, bw))
    circle = n_sets / Pn                       # refills to bring the window once round
    kind, passes, F, o = st["kind"], st["passes"], st["F"], st["o"]
    ru, cu, T = st["ru"], st["cu"], st["T"]

    fwd0 = np.maximum(cdiv(np.maximum(passes * n_sets - A, 0), Pn), 0)     # kind 0
    fwd1 = np.maximum(cdiv(np.maximum(n_sets - A, 0), Pn), 0)              # kinds 1, 2
    margin = (A - Pn) * e                      # words kept behind the demand after a refill
    zone = ru * (ru - 1)
    lo, hi = margin - zone // 2 + 1, zone // 2
    # slab boundaries inside a pass; pass ends (multiples of nb slabs) wrap to the start anyway
    wraps0 = (_edges_in_zones(A * e, Pn * e, fwd0, T * ru, lo, hi)
              - _edges_in_zones(A * e, Pn * e, fwd0, st["nb"] * T * ru, lo, hi))
    wraps0 = np.where(st["nb"] > 1, np.maximum(wraps0, 0), 0)
    wraps1 = np.where(st["chunk"] > margin, fwd1, 0)
    p_blk = np.clip((st["blk"] - margin) / (Pn * e), 0.0, 1.0)
    wraps2 = passes * p_blk * (st["nb"] > 1)
    misses = np.select([kind == 0, kind == 1], [fwd0 + wraps0 * circle, fwd1 + wraps1 * circle], fwd1 + wraps2 * circle)
    misses = np.where(fits, 0, np.rint(misses).astype(np.int64))
    reads = init_lines * bw + misses * lines_pf * bw

    # demand rows of the first and the last forward refill
    def row_at(u):
        """Demand row where the walk reaches word u of its path."""
        v = np.maximum(valid, 1)
        slab = np.maximum(T * ru, 1)
        j, q = u // v, u % v
        b = np.minimum(q // slab, st["nb"] - 1)
        r0 = (j * st["nb"] + b) * F + o + skew_row(np.clip(q - b * slab, 0, slab - 1) + 1, T, ru)
        r1 = (u // np.maximum(st["R"] * cu, 1)) * F
        fc = u // np.maximum(st["blk"], 1)
        qc = np.clip(u - fc * st["blk"], 0, np.maximum(st["K"] * cu - 1, 0))
        r2 = fc * st["nb"] * F + skew_row(qc + 1, st["K"], cu)
        return np.select([kind == 0, kind == 1], [r0, r1], r2)

    fwd = np.select([kind == 0], [fwd0], fwd1)
    u1 = A * e
    un = (A + np.maximum(fwd - 1, 0) * Pn) * e
    y1 = c - 2 - row_at(u1)
    yn = -1 + misses * c - row_at(un) - 1
    late = np.maximum(np.maximum(2 * y1, yn), 0)
    late = np.where(misses > 0, late, 0)
    return reads, misses, late
