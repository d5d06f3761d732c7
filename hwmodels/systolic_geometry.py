"""Where a systolic array reads and writes what, cycle by cycle: SCALE-Sim's demand-matrix geometry.

Shared by the fold model (``hwmodels.systolic``) and the memory replica
(``hwmodels.systolic_memory``): skewed blocks and the demand row of the n-th ofmap write.
"""
from __future__ import annotations

import numpy as np


def cdiv(a, b):
    return -(-a // b)


def skew_row(q, h, w):
    """Row (0-based) of the q-th (1-based) element written when an h x w block is skewed
    (element (i, c) at row i + c) and read row by row."""
    a, b = np.minimum(h, w), np.maximum(h, w)
    ramp = a * (a + 1) // 2
    full = h * w
    # ramp up: (i+1)(i+2)/2 >= q
    i_up = np.ceil((-3 + np.sqrt(1 + 8 * q)) / 2).astype(np.int64)
    # plateau: ramp + (i - a + 1) * a >= q
    i_mid = a - 1 + cdiv(np.maximum(q - ramp, 0), a)
    # ramp down: full - (a+b-2-i)(a+b-1-i)/2 >= q  <=>  m(m+1)/2 <= full - q with m = a+b-2-i
    m = np.floor((-1 + np.sqrt(1 + 8 * np.maximum(full - q, 0))) / 2).astype(np.int64)
    i_down = a + b - 2 - m
    return np.where(q <= ramp, i_up, np.where(q <= ramp + (b - a) * a, i_mid, i_down))


def ofmap_write_row(n, df, R, C, sr, sc, t, rf, cf, F):
    """Demand row of the n-th (1-based) valid ofmap write, folds in SCALE-Sim's order."""
    n0 = n - 1
    os_ = df == 1
    # ws / is: fold (fc, fr) writes a T x cu block (cu = cols of Sc in col fold fc)
    per_fc = np.where(os_, sr * C, rf * t * C)
    fc = np.minimum(n0 // per_fc, cf - 1)
    cu = np.where(fc == cf - 1, sc - (cf - 1) * C, C)
    q = n0 - fc * per_fc
    blk_ws = t * cu
    fr_ws = np.minimum(q // blk_ws, rf - 1)
    q_ws = q - fr_ws * blk_ws
    row_ws = (fc * rf + fr_ws) * F + 2 * R - 1 + skew_row(q_ws + 1, t, cu)
    # os: fold (fc, fr) writes an ru x cu block, flipped below row_delta idle rows
    fr_os = np.minimum(q // (R * cu), rf - 1)
    ru = np.where(fr_os == rf - 1, sr - (rf - 1) * R, R)
    q_os = q - fr_os * R * cu
    row_os = (fc * rf + fr_os) * F + t - 1 + (R - ru) + skew_row(q_os + 1, ru, cu)
    return np.where(os_, row_os, row_ws)
