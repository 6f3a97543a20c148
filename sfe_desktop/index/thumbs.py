"""Thumbnail cache: small JPEGs named by content hash, written atomically."""
from __future__ import annotations

import logging
from pathlib import Path

from PIL import Image

from ..data.images import load_image
from ..errors import ImageReadError
from .atomic import atomic_write

log = logging.getLogger(__name__)
MAX_ASPECT = 4.0  # a thumbnail is at most 4 times as long as it is wide (the middle of a panorama)


def thumbnail(image: Image.Image, size: int) -> Image.Image:
    """A copy of ``image`` at most ``size`` pixels on its longer side. Very long or tall images (panoramas) keep
    their middle at :data:`MAX_ASPECT`: a 20000x100 panorama gives 256x64, not an unreadable 256x1."""
    w, h = image.size
    if max(w, h) > MAX_ASPECT * min(w, h):
        if w > h:
            keep = max(1, round(MAX_ASPECT * h))
            image = image.crop(((w - keep) // 2, 0, (w - keep) // 2 + keep, h))
        else:
            keep = max(1, round(MAX_ASPECT * w))
            image = image.crop((0, (h - keep) // 2, w, (h - keep) // 2 + keep))
    thumb = image.copy()
    thumb.thumbnail((size, size), Image.BILINEAR)
    return thumb


class ThumbnailCache:
    """``directory/ab/abcdef....jpg`` thumbnails at most ``size`` pixels on their longer side."""

    def __init__(self, directory: str | Path, size: int = 256, quality: int = 85):
        self.directory = Path(directory)
        self.size = size
        self.quality = quality

    def path_for(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.jpg"

    def put(self, key: str, image: Image.Image) -> Path:
        """Store a thumbnail of ``image`` under ``key`` unless one exists; return its path."""
        target = self.path_for(key)
        if not target.exists():
            thumb = thumbnail(image, self.size)
            atomic_write(target, lambda tmp: thumb.convert("RGB").save(tmp, "JPEG", quality=self.quality), fsync=False)
        return target

    def get(self, key: str, source: str | Path) -> Path | None:
        """Path of the thumbnail for ``key``, made from ``source`` when missing; ``None`` if unreadable."""
        target = self.path_for(key)
        if target.exists():
            return target
        try:
            return self.put(key, load_image(source, min_side=self.size))
        except (ImageReadError, OSError) as exc:
            log.info("no thumbnail for %s: %s", source, exc)
            return None
