"""Safe image decoding: regular files only, EXIF orientation, reduced-size JPEG decoding, decompression-bomb
refusal, 16-bit and float greyscale scaled correctly; the image file
extensions the app reads (one list for the scanner, the GUI and the CLI). No torch here: the GUI imports it at
start. The model input tensor is made in :mod:`.transforms`."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import ImageReadError
from .files import GB, FileTooLargeError, NotRegularFileError, open_regular, reason

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
MAX_PIXELS = 180_000_000  # larger images are refused as decompression bombs
MAX_FILE_BYTES = 2 * GB    # larger files are refused unread
_WIDE_GREY = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}

try:  # optional HEIC support
    from pillow_heif import register_heif_opener  # type: ignore

    register_heif_opener()
    IMAGE_EXTENSIONS |= {".heic", ".heif"}
except ImportError:  # pragma: no cover - depends on the machine
    pass

Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# Pillow warns of an image over that size, then :func:`load_image` refuses it with its own one-line error. Set once
# here rather than per decode: ``warnings.catch_warnings`` swaps the process-wide filters and is not thread-safe, so
# the decode threads of an index run, each saving and restoring them, undid filters that other threads had set.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB of an image of any mode. Greyscale of 16 or 32 bits (``I;16``, ``I``) and of floats (``F``) is
    scaled to 0..255 first: Pillow's own conversion clips it, so a 16-bit photo came out almost white and a float
    one (0..1) black."""
    if image.mode not in _WIDE_GREY:
        return image.convert("RGB")
    a = np.asarray(image, dtype=np.float64)
    finite = np.isfinite(a)
    a = np.where(finite, a, 0.0)
    lo, hi = (float(a[finite].min()), float(a[finite].max())) if finite.any() else (0.0, 0.0)
    if image.mode.startswith("I;16") or (image.mode == "I" and lo >= 0 and hi <= 65535):
        a = a / 257.0                               # 16-bit samples
    elif image.mode == "F" and lo >= 0 and hi <= 1.0:
        a = a * 255.0                               # floats in 0..1
    elif not (lo >= 0 and hi <= 255):               # any other range: stretched to 0..255
        a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L").convert("RGB")


def open_image_file(path: str | Path):
    """The file of a photo, opened for reading: a regular file of at most :data:`MAX_FILE_BYTES` (never a FIFO
    or a device, which would block or never end). Raises :class:`ImageReadError` with the reason."""
    path = Path(path)
    try:
        return open_regular(path, MAX_FILE_BYTES)
    except FileNotFoundError as exc:
        raise ImageReadError(f"{path.name}: file not found") from exc
    except PermissionError as exc:
        raise ImageReadError(f"{path.name}: permission denied") from exc
    except (NotRegularFileError, FileTooLargeError) as exc:
        raise ImageReadError(f"{path.name}: {exc.strerror}") from exc
    except OSError as exc:
        raise ImageReadError(f"{path.name}: cannot read ({reason(exc)})") from exc


def load_image(path: str | Path, min_side: int = 512) -> Image.Image:
    """Decode ``path`` as RGB, applying EXIF orientation, at no less than ``min_side`` pixels on its
    shorter side when the format allows a cheaper reduced decode (JPEG draft mode).

    Raises
    ------
    ImageReadError
        With a one-line reason when the file cannot be decoded.
    """
    path = Path(path)
    try:
        with open_image_file(path) as f:
            with Image.open(f) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise ImageReadError(f"{path.name}: {im.width}x{im.height} pixels is too large (decompression bomb)")
                if im.format == "JPEG" and min_side:
                    scale = min(im.width, im.height) / min_side
                    if scale >= 2:
                        im.draft("RGB", (max(1, int(im.width / scale)), max(1, int(im.height / scale))))
                im.seek(0)
                return to_rgb(ImageOps.exif_transpose(im))
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{path.name}: decompression bomb refused") from exc
    except Image.UnidentifiedImageError as exc:  # its text names the open file object, not the photo
        raise ImageReadError(f"{path.name}: cannot decode (not an image format this app reads)") from exc
    except OSError as exc:  # truncated, I/O error
        reason_ = str(exc).split("\n")[0] or type(exc).__name__
        raise ImageReadError(f"{path.name}: cannot decode ({reason_})") from exc
    except (ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise ImageReadError(f"{path.name}: cannot decode ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from exc
