"""The app's settings: device choice, data directories, default checkpoint, index location.

Each has a default that an environment variable overrides. (Not to be confused with the model's
architecture, :class:`sfe_desktop.model.config.ModelConfig`, which a checkpoint's ``config.json`` holds, nor
with the GUI's saved preferences, ``qt/widgets/settings_dialog.AppSettings``.)

``SFE_DEVICE`` overrides the requested device (``auto``, ``cpu``, ``cuda``, ``cuda:1``);
``SFE_DATA_DIR`` overrides the per-user data directory; ``SFE_CHECKPOINT`` names the default
checkpoint directory.
"""
from __future__ import annotations

import hashlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import SFEError

if TYPE_CHECKING:  # torch loads in pick_device only: the CLI checks its arguments and folders without it
    import torch

log = logging.getLogger(__name__)

APP_NAME = "sfe-explorer"
INDEX_DIR_NAME = ".sfe-index"
CATALOG_FILE = "catalog.sqlite"  # the file an index folder holds once something was indexed into it
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "resources" / "sfe-default"


def pick_device(pref: str | None = "auto") -> torch.device:
    """Return the torch device to run on.

    ``SFE_DEVICE`` (when set and not empty) wins over ``pref``. ``auto`` picks CUDA when available,
    else CPU. Requesting CUDA on a machine without it raises :class:`SFEError`.
    """
    import torch

    env = os.environ.get("SFE_DEVICE", "").strip()
    choice = (env or pref or "auto").strip().lower()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            source = "SFE_DEVICE" if env else "device"
            raise SFEError(f"{source}={choice} was requested but CUDA is not available; use 'cpu' or 'auto'")
        try:
            dev = torch.device(choice)
        except RuntimeError as exc:
            raise SFEError(f"invalid device '{choice}'") from exc
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SFEError(f"device {choice} does not exist ({torch.cuda.device_count()} CUDA device(s))")
        return dev
    raise SFEError(f"unknown device '{choice}' (choose auto, cpu or cuda)")


def data_dir() -> Path:
    """Per-user data directory (``SFE_DATA_DIR`` overrides the platform default)."""
    env = os.environ.get("SFE_DATA_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / APP_NAME


def default_checkpoint() -> Path:
    """Checkpoint used when none is given: ``SFE_CHECKPOINT`` or the bundled ``resources/sfe-default``."""
    env = os.environ.get("SFE_CHECKPOINT", "").strip()
    return Path(env).expanduser() if env else DEFAULT_CHECKPOINT


def writable(directory: Path) -> bool:
    """Whether this process may create files in ``directory`` (or in its nearest existing parent)."""
    probe = Path(directory)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return os.access(probe, os.W_OK | os.X_OK)


def _fallback_index_dir(photo_dir: Path) -> Path:
    digest = hashlib.sha1(os.fsencode(str(photo_dir))).hexdigest()[:12]
    return data_dir() / "collections" / f"{photo_dir.name or 'root'}-{digest}"


def default_index_dir(photo_dir: str | Path) -> Path:
    """Index folder of a collection: ``<photo_dir>/.sfe-index``; when the photo folder is read-only, that folder
    still when it holds an index (searched as it is, read-only), else a folder under :func:`data_dir` named after
    the photo folder."""
    photo_dir = Path(photo_dir).expanduser().resolve()
    inside = photo_dir / INDEX_DIR_NAME
    if inside.is_dir() and (writable(inside) or (inside / CATALOG_FILE).is_file()):
        return inside
    if writable(photo_dir):
        return inside
    fallback = _fallback_index_dir(photo_dir)
    log.info("photo folder %s is read-only; index kept in %s", photo_dir, fallback)
    return fallback


def existing_index_dir(photo_dir: str | Path, index_dir: str | Path | None = None) -> Path | None:
    """The index folder that holds an index of ``photo_dir`` (``index_dir`` when given, else where
    :func:`default_index_dir` puts one, in the photo folder or under :func:`data_dir`), or None when the folder
    was never indexed. Looks only; creates nothing."""
    if index_dir is not None:
        candidates = [Path(index_dir).expanduser()]
    else:
        photo_dir = Path(photo_dir).expanduser().resolve()
        candidates = [photo_dir / INDEX_DIR_NAME, _fallback_index_dir(photo_dir)]
    return next((c for c in candidates if (c / CATALOG_FILE).is_file()), None)
