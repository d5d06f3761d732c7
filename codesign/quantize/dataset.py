"""The user's data: an .npz fed exactly as stored, or an image folder; split deterministically.

An .npz holds ``x`` (any shape and dtype the model's input takes: NCHW float images, int64
token ids, ...) and integer labels ``y``.  Nothing is rescaled or transposed: a deployed model
sees its inputs as they are, so the accuracy measured here is the one it will have.  An image
folder (``root/<class>/<image>``) is read by ``codesign.data`` as (N, C, H, W) float32 in [0, 1].

The split is stratified and seeded: a calibration part (activation ranges) and a selection part
(every accuracy reported); their indices into DATA are written to ``split.json``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwmodels.errors import CodesignError

CALIBRATION_FRACTION = 0.25
MAX_CALIBRATION = 512


@dataclass(frozen=True)
class QuantData:
    """Calibration and selection parts of the user's data, with their indices into DATA."""

    calib_x: np.ndarray
    calib_y: np.ndarray
    select_x: np.ndarray
    select_y: np.ndarray
    calib_index: np.ndarray
    select_index: np.ndarray
    source: str
    digest: str

    def split_json(self) -> dict:
        return {"data": self.source, "rule": f"stratified, seeded; calibration = {CALIBRATION_FRACTION:.0%} of the "
                                             f"samples (at most {MAX_CALIBRATION}), selection = the rest",
                "calibration": self.calib_index.tolist(), "selection": self.select_index.tolist()}


def load_raw(spec: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` as stored (an .npz) or as ``codesign.data`` reads an image folder."""
    if str(spec) == "digits":          # scikit-learn's bundled digits, as codesign.data gives them: (N, 1, 8, 8) float32
        from codesign.data import load_digits

        ds = load_digits()
        return ds.x, ds.y
    path = Path(spec)
    if not path.exists():
        raise CodesignError(f"--data {spec}: not found; give an .npz with arrays x and y, or an image folder")
    if path.is_dir():
        from codesign.data import load_image_folder

        ds = load_image_folder(path)
        return ds.x, ds.y
    if path.suffix.lower() != ".npz":
        raise CodesignError(f"--data {path}: unsupported file (use an .npz with arrays x and y, or an image folder)")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "x" not in f.files or "y" not in f.files:
                raise CodesignError(f"--data {path}: the .npz must hold arrays 'x' and 'y' (found: {', '.join(f.files) or 'none'})")
            x, y = np.asarray(f["x"]), np.asarray(f["y"])
    except CodesignError:
        raise
    except Exception as e:  # zip errors, bad headers, pickled objects
        raise CodesignError(f"--data {path}: cannot read the .npz ({type(e).__name__}: {e})") from None
    return x, y


def check_labels(y: np.ndarray, n: int, num_classes: int, where: str) -> np.ndarray:
    """Integer labels, one per sample, each a class the model's output has."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise CodesignError(f"{where}: labels y must be one integer class per sample, shape (N,), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise CodesignError(f"{where}: labels y must be integers, got dtype {y.dtype} (store them with y.astype('int64'))")
    if len(y) != n:
        raise CodesignError(f"{where}: x has {n} samples but y has {len(y)}")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        bad = lo if lo < 0 else hi
        raise CodesignError(f"{where}: label {bad} is out of range: the model outputs {num_classes} classes, "
                            f"so labels must be 0..{num_classes - 1}")
    if len(np.unique(y)) < 2:
        raise CodesignError(f"{where}: every label is class {lo}; accuracy on one class says nothing (give several classes)")
    return y.astype(np.int64)


def split(x: np.ndarray, y: np.ndarray, seed: int, source: str) -> QuantData:
    """Stratified seeded split into calibration and selection parts."""
    from sklearn.model_selection import train_test_split

    n = len(y)
    n_cal = min(MAX_CALIBRATION, max(1, int(round(n * CALIBRATION_FRACTION))))
    if n - n_cal < 20:
        raise CodesignError(f"--data {source}: {n} samples are too few; give at least {n_cal + 20} "
                            "(a calibration part and a selection part of 20 or more)")
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 and n_cal >= len(counts[counts > 0]) else None
    cal, sel = train_test_split(np.arange(n), train_size=n_cal, random_state=seed, stratify=stratify)
    cal, sel = np.sort(cal), np.sort(sel)
    h = hashlib.sha256()
    for a in (x, y, cal):
        h.update(np.ascontiguousarray(a).tobytes())
    return QuantData(x[cal], y[cal], x[sel], y[sel], cal, sel, source, h.hexdigest()[:16])
