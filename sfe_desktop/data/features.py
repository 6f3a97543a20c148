"""On-disk cache of frozen backbone outputs, so training epochs skip the frozen layers.

Images: the output of the frozen lower blocks, float16 (N, C, h, w).  Texts: token ids, mask and the
hidden states after the frozen lower layers, float16 (M, L, C).  Each cache file is keyed by the
backbone settings and a hash of the inputs (the captions' text; each photo's absolute path, size, times and inode,
so a photo replaced under its old name is read again), written to a temporary name and renamed when complete.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import Cancelled, ImageReadError
from .images import load_image
from .transforms import to_tensor

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]


def _key(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def weights_key(backbone) -> str:
    """Fingerprint of the weights below a backbone's split (what a cached feature depends on): two random test
    backbones, or one whose lower layers were changed, never share cache entries."""
    upper = tuple(backbone.upper_state_prefixes())
    h = hashlib.sha1()
    for name, t in sorted(backbone.state_dict().items()):
        if upper and name.startswith(upper):
            continue
        h.update(name.encode())
        h.update(np.ascontiguousarray(t.detach().cpu().float().numpy()).tobytes())
    return h.hexdigest()[:16]


def file_identity(path) -> list:
    """What identifies a file's content without reading it: its absolute path, size, modification and change
    times and inode (a photo replaced under the same name, or another folder with the same layout, differs)."""
    path = os.path.abspath(os.fspath(path))
    try:
        st = os.stat(path)
    except OSError as exc:
        return [path, type(exc).__name__]
    return [path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(n, start + size)


VIEWS = ("photo", "flip", "crop")  # augmented views a training run may cache (see :func:`view_of`)


def view_of(image: Image.Image, view: str, index: int) -> tuple[Image.Image, bool]:
    """The ``view`` of the ``index``-th photo of a list, and whether to mirror it: "photo" as it is, "flip"
    mirrored, "crop" a random crop of 55-100 % of the area at an aspect ratio of 3:4 to 4:3, mirrored half of the
    time. A crop depends on the photo's index only, so a cached view is the same crop each run."""
    if view not in VIEWS:
        raise ValueError(f"view {view!r} is not one of {', '.join(VIEWS)}")
    if view != "crop":
        return image, view == "flip"
    rng = np.random.default_rng([20261128, index])
    area, ratio = rng.uniform(0.55, 1.0), float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
    w, h = min(1.0, float(np.sqrt(area * ratio))), min(1.0, float(np.sqrt(area / ratio)))
    x0, y0 = rng.uniform(0, 1 - w), rng.uniform(0, 1 - h)
    W, H = image.size
    box = (int(x0 * W), int(y0 * H), max(int(x0 * W) + 1, int((x0 + w) * W)), max(int(y0 * H) + 1, int((y0 + h) * H)))
    return image.crop(box), bool(rng.random() < 0.5)


@torch.no_grad()
def image_lower_features(backbone, paths: Sequence[Path], cache_dir: Path | None = None, view: str = "photo",
                         batch_size: int = 32, progress: Progress | None = None,
                         cancel: threading.Event | None = None) -> np.ndarray:
    """Lower-block image features for ``paths`` (of their ``view``, :func:`view_of`), from the cache when
    present."""
    view_of(Image.new("RGB", (2, 2)), view, 0)  # an unknown view fails before any work
    backbone.eval()
    dev = next(backbone.parameters()).device
    target = None
    if cache_dir is not None:
        key = _key(backbone.name, backbone.image_size, backbone.split, False if view == "photo" else view,
                   weights_key(backbone), [file_identity(p) for p in paths])
        target = Path(cache_dir) / f"img-{backbone.name}-{backbone.image_size}-{key}.npy"
        if target.exists():
            return np.load(target, mmap_mode="r")
        target.parent.mkdir(parents=True, exist_ok=True)
    size = backbone.image_size

    def decode(i):
        try:
            image, mirror = view_of(load_image(paths[i], min_side=size), view, i)
            return to_tensor(image, size, backbone.normalise, mirror)
        except ImageReadError:
            log.warning("cannot read %s; using a blank image", paths[i])
            return torch.zeros(3, size, size)

    out = None
    with ThreadPoolExecutor(max_workers=2) as pool:
        spans = list(_batches(len(paths), batch_size))
        pending = pool.map(lambda s: torch.stack([decode(i) for i in range(s[0], s[1])]), spans)
        for (a, b), x in zip(spans, pending):
            if cancel is not None and cancel.is_set():
                raise Cancelled("feature extraction cancelled")
            h = backbone.lower(x.to(dev)).float().cpu().numpy().astype(np.float16)
            if out is None:
                shape = (len(paths),) + h.shape[1:]
                out = (np.lib.format.open_memmap(str(target) + ".part", "w+", np.float16, shape)
                       if target is not None else np.zeros(shape, np.float16))
            out[a:b] = h
            if progress:
                progress(b, len(paths))
    if target is not None:
        out.flush()
        del out
        os.replace(str(target) + ".part", target)
        return np.load(target, mmap_mode="r")
    return out


@torch.no_grad()
def text_lower_features(backbone, captions: Sequence[str], cache_dir: Path | None = None, batch_size: int = 256,
                        progress: Progress | None = None) -> dict[str, np.ndarray]:
    """Token ids, mask and lower-layer hidden states for ``captions`` (padded to the longest)."""
    backbone.eval()
    dev = next(backbone.parameters()).device
    target = None
    if cache_dir is not None:
        key = _key(backbone.name, backbone.max_length, backbone.split, weights_key(backbone), list(captions))
        target = Path(cache_dir) / f"txt-{backbone.name}-{key}.npz"
        if target.exists():
            with np.load(target) as z:
                return {k: z[k] for k in z.files}
    enc = backbone.tokenize(list(captions))
    ids, mask = enc["input_ids"], enc["attention_mask"]
    hidden = np.zeros((len(captions), ids.shape[1], backbone.out_channels), np.float16)
    for a, b in _batches(len(captions), batch_size):
        width = int(mask[a:b].sum(1).max())
        h = backbone.lower(ids[a:b, :width].to(dev), mask[a:b, :width].to(dev))
        hidden[a:b, :width] = h.float().cpu().numpy()
        if progress:
            progress(b, len(captions))
    out = {"ids": ids.numpy().astype(np.int32), "mask": mask.numpy().astype(bool), "hidden": hidden}
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = str(target) + ".part.npz"
        np.savez(tmp, **out)
        os.replace(tmp, target)
    return out
