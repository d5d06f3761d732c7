"""Datasets for measured accuracy: scikit-learn's bundled digits, a user's .npz, or an image folder.

Every accuracy the project reports is measured on held-out data from here.  Loading validates
the input (empty, unreadable, wrong label shape) and raises ``CodesignError`` with one line;
splits are stratified and deterministic for a given seed so that numbers are reproducible.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from hwmodels.errors import CodesignError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


@dataclass(frozen=True)
class Dataset:
    """Images ``x`` (N, C, H, W) float32 scaled to [0, 1] and integer labels ``y`` (N,)."""

    x: np.ndarray
    y: np.ndarray
    name: str
    class_names: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        return int(self.y.max()) + 1

    @property
    def in_channels(self) -> int:
        return int(self.x.shape[1])

    @property
    def resolution(self) -> int:
        return int(self.x.shape[2])


@dataclass(frozen=True)
class Split:
    """One part of a split, as torch tensors ready for training or evaluation."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class Splits:
    """Deterministic stratified train / val (calibration, selection) / test (reported) parts."""

    train: Split
    val: Split
    test: Split
    num_classes: int
    in_channels: int
    resolution: int
    name: str
    seed: int

    @property
    def fingerprint(self) -> str:
        """Short hash of the data and split: keys checkpoints so a new dataset retrains."""
        h = hashlib.sha256()
        for part in (self.train, self.val, self.test):
            h.update(part.x.numpy().tobytes())
            h.update(part.y.numpy().tobytes())
        return h.hexdigest()[:16]


def load_digits() -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images, 10 classes); nothing is downloaded."""
    from sklearn.datasets import load_digits as _load

    d = _load()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]
    return Dataset(x=x, y=d.target.astype(np.int64), name="digits",
                   class_names=tuple(str(c) for c in d.target_names))


def load_npz(path: str | Path) -> Dataset:
    """An .npz with arrays ``x`` (N,H,W), (N,C,H,W) or (N,H,W,C) and integer ``y`` (N,)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            if "x" not in f.files or "y" not in f.files:
                raise CodesignError(f"{path}: .npz must hold arrays 'x' and 'y' (found: {', '.join(f.files) or 'none'})")
            x, y = np.asarray(f["x"]), np.asarray(f["y"])
    except CodesignError:
        raise
    except Exception as exc:  # zip errors, bad headers, pickled objects
        raise CodesignError(f"{path}: cannot read .npz ({type(exc).__name__}: {exc})") from None
    return _validate(x, y, str(path), name=path.stem)


def load_image_folder(path: str | Path, size: int | None = None) -> Dataset:
    """Class-per-subfolder images (``root/<class>/<image>``), greyscale if all are, resized to ``size``."""
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise CodesignError(f"{root}: image folder has no class subfolders (expected {root}/<class>/<image>.png)")
    files: list[tuple[Path, int]] = []
    for label, cls in enumerate(classes):
        files += [(f, label) for f in sorted((root / cls).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise CodesignError(f"{root}: no images found in the class subfolders ({', '.join(IMAGE_SUFFIXES)})")
    images = []
    for f, _ in files:
        try:
            with Image.open(f) as im:
                images.append(im.convert("RGB") if im.mode not in ("L", "1") else im.convert("L"))
        except (UnidentifiedImageError, OSError) as exc:
            raise CodesignError(f"{f}: unreadable image ({exc})") from None
    grey = all(im.mode == "L" for im in images)
    side = size or max(min(im.size) for im in images)
    arrays = []
    for im in images:
        im = im.convert("L" if grey else "RGB").resize((side, side))
        a = np.asarray(im, dtype=np.float32) / 255.0
        arrays.append(a[None] if grey else a.transpose(2, 0, 1))
    y = np.array([label for _, label in files], dtype=np.int64)
    return Dataset(x=np.stack(arrays), y=y, name=root.name, class_names=tuple(classes))


def load_dataset(spec: str | Path) -> Dataset:
    """``digits``, a path to an .npz, or a path to an image folder."""
    if str(spec) == "digits":
        return load_digits()
    path = Path(spec)
    if not path.exists():
        raise CodesignError(f"dataset '{spec}' not found: give 'digits', an .npz file with x and y, or an image folder")
    if path.is_dir():
        return load_image_folder(path)
    if path.suffix.lower() == ".npz":
        return load_npz(path)
    raise CodesignError(f"{path}: unsupported dataset file (use an .npz with arrays x and y, or an image folder)")


def _validate(x: np.ndarray, y: np.ndarray, where: str, name: str) -> Dataset:
    """Shape and type checks with one-line messages; returns x as (N, C, H, W) float32 in [0, 1]."""
    if x.size == 0 or y.size == 0:
        raise CodesignError(f"{where}: dataset is empty (x {x.shape}, y {y.shape})")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise CodesignError(f"{where}: labels y must be one integer class per sample, shape (N,), got {y.shape}")
    if not (np.issubdtype(y.dtype, np.integer) or (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)))):
        raise CodesignError(f"{where}: labels y must be integers, got dtype {y.dtype}")
    if x.shape[0] != y.shape[0]:
        raise CodesignError(f"{where}: x has {x.shape[0]} samples but y has {y.shape[0]}")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[2] != x.shape[3]:
        raise CodesignError(f"{where}: x must be square images (N,H,W), (N,C,H,W) or (N,H,W,C), got {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
        raise CodesignError(f"{where}: x must be finite numbers, got dtype {x.dtype}")
    y = y.astype(np.int64)
    if y.min() < 0:
        raise CodesignError(f"{where}: labels must be >= 0, found {int(y.min())}")
    if len(np.unique(y)) < 2:
        raise CodesignError(f"{where}: all {len(y)} labels are class {int(y[0])}; a classifier needs at least two classes")
    x = x.astype(np.float32)
    lo, hi = float(x.min()), float(x.max())
    x = (x - lo) / (hi - lo) if hi > lo else x - lo
    return Dataset(x=x, y=y, name=name)


def split_dataset(ds: Dataset, seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.2) -> Splits:
    """Stratified train/val/test split, the same for the same seed; val calibrates and selects, test reports."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(ds.y)
    stratify = ds.y if counts[counts > 0].min() >= 3 else None
    idx = np.arange(len(ds.y))
    try:
        rest, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=stratify)
        strat_rest = ds.y[rest] if stratify is not None else None
        train, val = train_test_split(rest, test_size=val_fraction / (1 - test_fraction), random_state=seed,
                                      stratify=strat_rest)
    except ValueError as exc:
        raise CodesignError(f"dataset {ds.name}: too small to split into train/val/test ({len(idx)} samples: {exc})") from None

    def part(i: np.ndarray) -> Split:
        return Split(torch.from_numpy(ds.x[np.sort(i)]), torch.from_numpy(ds.y[np.sort(i)]))

    return Splits(part(train), part(val), part(test), num_classes=ds.num_classes, in_channels=ds.in_channels,
                  resolution=ds.resolution, name=ds.name, seed=seed)


def load_splits(spec: str | Path, seed: int = 0) -> Splits:
    """Load ``spec`` (see ``load_dataset``) and split it deterministically."""
    return split_dataset(load_dataset(spec), seed=seed)


def resize(x: torch.Tensor, resolution: int | None) -> torch.Tensor:
    """Bilinear resize to the sub-network's input resolution (no-op when it already matches)."""
    if resolution is None or x.shape[-1] == resolution:
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)


def random_shift(x: torch.Tensor, gen: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """Cheap augmentation for tiny images: shift each batch by up to ``max_shift`` pixels (zero fill)."""
    if max_shift <= 0:
        return x
    dx, dy = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,), generator=gen))
    padded = F.pad(x, (max_shift,) * 4)
    h, w = x.shape[-2:]
    return padded[..., max_shift + dy: max_shift + dy + h, max_shift + dx: max_shift + dx + w]


def batches(split: Split, batch_size: int, shuffle: bool = False,
            gen: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches of a split; shuffled with ``gen`` for deterministic training."""
    n = len(split)
    order = torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
    for i in range(0, n, batch_size):
        j = order[i:i + batch_size]
        yield split.x[j], split.y[j]
