"""A checkpoint folder's files and its content hash, without torch: the command line checks an index's
checkpoint against the one it was given before the model (and torch) load."""
from __future__ import annotations

import hashlib
from pathlib import Path

CONFIG_FILE = "config.json"
CORPUS_FILE = "corpus.json"
WEIGHTS_FILE = "model.safetensors"


def checkpoint_id(directory: str | Path) -> str:
    """Content hash of the checkpoint's files (those of its layout that exist)."""
    directory = Path(directory)
    h = hashlib.sha256()
    for name in (CONFIG_FILE, CORPUS_FILE, WEIGHTS_FILE):
        if (directory / name).is_file():
            with open(directory / name, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:16]
