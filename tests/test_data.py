"""Datasets: digits built in, .npz and image folders, deterministic stratified splits, one-line errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from codesign.data import (batches, load_dataset, load_digits, load_image_folder, load_splits, random_shift, resize,
                           split_dataset)
from hwmodels.errors import CodesignError




def test_digits_is_real_and_normalised():
    ds = load_digits()
    assert ds.x.shape == (1797, 1, 8, 8) and ds.y.shape == (1797,)
    assert ds.num_classes == 10 and ds.x.dtype == np.float32
    assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0


def test_split_is_deterministic_stratified_and_disjoint():
    a, b, c = load_splits("digits", seed=0), load_splits("digits", seed=0), load_splits("digits", seed=1)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    rows = lambda s: {r.tobytes() for r in s.x.numpy().reshape(len(s), -1)}  # noqa: E731
    assert not rows(a.train) & rows(a.test)
    test_frac = np.bincount(a.test.y.numpy(), minlength=10) / len(a.test)
    all_frac = np.bincount(load_digits().y, minlength=10) / 1797
    assert np.abs(test_frac - all_frac).max() < 0.02


def test_npz_layouts(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (60, 6, 6, 3)).astype(np.uint8)
    y = np.repeat(np.arange(3), 20)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ds = load_dataset(tmp_path / "d.npz")
    assert ds.x.shape == (60, 3, 6, 6) and ds.num_classes == 3
    np.savez(tmp_path / "g.npz", x=x[..., 0], y=y[:, None])
    assert load_dataset(tmp_path / "g.npz").x.shape == (60, 1, 6, 6)
    splits = split_dataset(load_dataset(tmp_path / "g.npz"), seed=3)
    assert splits.in_channels == 1 and len(splits.test) == 12


@pytest.mark.parametrize("x, y, msg", [
    (np.zeros((0, 8, 8)), np.zeros((0,), int), "empty"),
    (np.zeros((10, 8, 8)), np.zeros((10, 2), int), "shape (N,)"),
    (np.zeros((10, 8, 8)), np.zeros((9,), int), "samples"),
    (np.zeros((10, 8, 8)), np.full((10,), 0.5), "integers"),
    (np.zeros((10, 8, 5)), np.zeros((10,), int), "square"),
])
def test_bad_npz_gives_one_line_error(tmp_path, x, y, msg):
    np.savez(tmp_path / "bad.npz", x=x, y=y)
    with pytest.raises(CodesignError, match=msg.replace("(", r"\(").replace(")", r"\)")) as err:
        load_dataset(tmp_path / "bad.npz")
    assert "\n" not in str(err.value)


def test_unreadable_and_missing(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(CodesignError, match="cannot read"):
        load_dataset(tmp_path / "junk.npz")
    np.savez(tmp_path / "noy.npz", x=np.zeros((4, 8, 8)))
    with pytest.raises(CodesignError, match="'x' and 'y'"):
        load_dataset(tmp_path / "noy.npz")
    with pytest.raises(CodesignError, match="not found"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CodesignError, match="no class subfolders"):
        load_dataset(tmp_path / "empty")


def test_image_folder(tmp_path):
    from PIL import Image

    ds = load_digits()
    for i in range(30):
        d = tmp_path / "imgs" / f"class_{ds.y[i]}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray((ds.x[i, 0] * 255).astype(np.uint8), mode="L").save(d / f"{i}.png")
    got = load_image_folder(tmp_path / "imgs")
    assert got.x.shape == (30, 1, 8, 8) and got.in_channels == 1
    assert [got.class_names[c] for c in got.y] == sorted(f"class_{c}" for c in ds.y[:30])
    (tmp_path / "imgs" / "class_0" / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(CodesignError, match="unreadable image"):
        load_image_folder(tmp_path / "imgs")


def test_helpers():
    x = torch.arange(2 * 64, dtype=torch.float32).reshape(2, 1, 8, 8)
    assert resize(x, 16).shape == (2, 1, 16, 16) and resize(x, 8) is x
    shifted = random_shift(x, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape
    split = load_splits("digits").val
    assert sum(len(yb) for _, yb in batches(split, 100)) == len(split)
