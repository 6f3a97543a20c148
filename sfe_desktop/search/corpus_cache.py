"""The caption corpus's Step-1 vectors, kept on disk per checkpoint.

Photo -> caption search ranks the checkpoint's ~30,000 training captions by their Step-1 vectors. The runtime
computes them from the memory bank (``SFERuntime.caption_corpus``: the cross-modal cues over every caption,
seconds of CPU, more than the rest of a search), and only once per process. Here they are written to
``<data dir>/cache/`` under the checkpoint's content hash (``SFERuntime.checkpoint_id``), so a later process (each
CLI call, each start of the app) reads them in milliseconds. Another checkpoint has another hash, so a stale
file is never read; a file that does not match its captions is recomputed.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np

from ..index.atomic import atomic_write
from ..settings import data_dir

log = logging.getLogger(__name__)
CACHE_VERSION = 1  # of the files' layout and of what they hold


def cache_files(checkpoint_id: str) -> tuple[Path, Path]:
    """(captions JSON, vectors .npy) of a checkpoint's corpus cache."""
    key = re.sub(r"[^A-Za-z0-9_.-]", "_", checkpoint_id)
    base = data_dir() / "cache" / f"corpus-v{CACHE_VERSION}-{key}"
    return base.with_suffix(".json"), base.with_suffix(".npy")


def _read(texts_file: Path, vectors_file: Path, dim: int) -> tuple[list[str], np.ndarray] | None:
    try:
        texts = json.loads(texts_file.read_text(encoding="utf-8"))
        vectors = np.load(vectors_file, allow_pickle=False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # corrupt or truncated: computed again
        log.warning("ignoring the corpus cache %s: %s", vectors_file, exc)
        return None
    if not (isinstance(texts, list) and vectors.dtype == np.float32 and vectors.shape == (len(texts), dim)):
        log.warning("ignoring the corpus cache %s: it does not match its captions", vectors_file)
        return None
    return texts, vectors


def caption_corpus(runtime, cancel=None) -> tuple[list[str], np.ndarray]:
    """``runtime.caption_corpus()`` (captions, (M, width) float32 index vectors), read from the disk cache when
    the runtime was loaded from a checkpoint folder, computed and written there otherwise. ``cancel``: a
    ``threading.Event`` that stops the computation (:class:`~sfe_desktop.errors.Cancelled`)."""
    if getattr(runtime, "source", None) is None:  # a runtime built in memory (tests): nothing to key a file by
        return runtime.caption_corpus(cancel=cancel)
    texts_file, vectors_file = cache_files(runtime.checkpoint_id)
    # the width of an indexed vector: the Step-1 vector, and the label bridge's beside it where the model has one
    cached = _read(texts_file, vectors_file, int(getattr(runtime, "vector_dim", None) or runtime.dim))
    if cached is not None:
        return cached
    texts, vectors = runtime.caption_corpus(cancel=cancel)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    def save(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, vectors, allow_pickle=False)

    try:  # vectors first: a reader needs both, and checks that they match
        atomic_write(vectors_file, save, fsync=False)
        atomic_write(texts_file, lambda tmp: Path(tmp).write_text(json.dumps(list(texts)), encoding="utf-8"),
                     fsync=False)
    except OSError as exc:  # a read-only data dir: the next process computes them again
        log.warning("cannot write the corpus cache %s: %s", vectors_file, exc)
    return list(texts), vectors
