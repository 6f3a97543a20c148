"""Safe image decoding: EXIF orientation, reduced-size JPEG decoding, decompression-bomb refusal; the image file
extensions the app reads (one list for the scanner, the GUI and the CLI). No torch here: the GUI imports it at
start. The model input tensor is made in :mod:`.transforms`."""
from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image, ImageOps

from ..errors import ImageReadError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
MAX_PIXELS = 180_000_000  # larger images are refused as decompression bombs

try:  # optional HEIC support
    from pillow_heif import register_heif_opener  # type: ignore

    register_heif_opener()
    IMAGE_EXTENSIONS |= {".heic", ".heif"}
except ImportError:  # pragma: no cover - depends on the machine
    pass

Image.MAX_IMAGE_PIXELS = MAX_PIXELS


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
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise ImageReadError(f"{path.name}: {im.width}x{im.height} pixels is too large (decompression bomb)")
                if im.format == "JPEG" and min_side:
                    scale = min(im.width, im.height) / min_side
                    if scale >= 2:
                        im.draft("RGB", (max(1, int(im.width / scale)), max(1, int(im.height / scale))))
                im.seek(0)
                im = ImageOps.exif_transpose(im)
                return im.convert("RGB")
    except ImageReadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(f"{path.name}: decompression bomb refused") from exc
    except FileNotFoundError as exc:
        raise ImageReadError(f"{path.name}: file not found") from exc
    except PermissionError as exc:
        raise ImageReadError(f"{path.name}: permission denied") from exc
    except IsADirectoryError as exc:
        raise ImageReadError(f"{path.name}: is a directory") from exc
    except OSError as exc:  # truncated, unknown format, I/O error, symlink loop
        reason = str(exc).split("\n")[0] or type(exc).__name__
        raise ImageReadError(f"{path.name}: cannot decode ({reason})") from exc
    except (ValueError, SyntaxError, EOFError) as exc:
        raise ImageReadError(f"{path.name}: cannot decode ({exc})") from exc
