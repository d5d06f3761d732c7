"""Top-1 accuracy measured in onnxruntime on the selection part: the accuracy the file will have."""
from __future__ import annotations

import numpy as np

from codesign.quantize.session import make_session, run_all
from hwmodels.errors import CodesignError


def logits(model_bytes: bytes, x: np.ndarray, fixed_batch: int | None, what: str) -> np.ndarray:
    sess = make_session(model_bytes, what)
    return run_all(sess, x, fixed_batch, what, outputs=[sess.get_outputs()[0].name])[0]


def top1(model_bytes: bytes, x: np.ndarray, y: np.ndarray, fixed_batch: int | None, what: str) -> float:
    out = logits(model_bytes, x, fixed_batch, what)
    if out.ndim != 2 or out.shape[0] != len(x):
        raise CodesignError(f"{what}: the output has shape {out.shape} for {len(x)} samples; quantize needs a "
                            "classifier whose output is (N, classes)")
    return float((out.argmax(axis=1) == y).mean())


def chance_level(y: np.ndarray) -> float:
    """What always answering the most frequent class scores."""
    return float(np.bincount(y).max() / len(y))
