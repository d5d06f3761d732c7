"""Running a model in onnxruntime the way it will be deployed (CPU, one thread, all optimisations)."""
from __future__ import annotations

import numpy as np

from hwmodels.errors import CodesignError

BATCH = 256


def make_session(model_bytes: bytes, what: str):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise CodesignError(f"{what}: onnxruntime cannot load it ({type(e).__name__}: {_first(e)})") from None


def run_all(sess, x: np.ndarray, fixed_batch: int | None, what: str, outputs: list[str] | None = None,
            flatten: bool = False) -> list[np.ndarray]:
    """Every requested output over all of ``x``, in batches (a fixed batch size is respected: the
    last batch is padded by repeating its first sample and the padding dropped).  ``flatten``: each
    output's values as one flat array (intermediate tensors need not keep the batch on axis 0,
    e.g. attention's (tokens, batch x heads, d))."""
    name = sess.get_inputs()[0].name
    step = fixed_batch or BATCH
    parts: list[list[np.ndarray]] = []
    for i in range(0, len(x), step):
        chunk = x[i:i + step]
        n = len(chunk)
        if fixed_batch and n < fixed_batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[:1], fixed_batch - n, axis=0)])
        try:
            res = sess.run(outputs, {name: chunk})
        except Exception as e:
            raise CodesignError(f"{what}: onnxruntime failed on samples {i}..{i + n - 1} "
                                f"({type(e).__name__}: {_first(e)})") from None
        if flatten:
            parts.append([np.asarray(r).ravel() for r in res])
            continue
        parts.append([r[:n] if r.ndim and r.shape[0] == len(chunk) else r for r in res])
    if flatten:
        return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
    return [np.concatenate([p[k] for p in parts]) if parts[0][k].ndim else parts[0][k] for k in range(len(parts[0]))]


def _first(e: Exception) -> str:
    text = " ".join(str(e).split())
    return text[:300] or type(e).__name__
