"""JPEG decoding and resizing on a CUDA device (nvjpeg through ``torchvision.io.decode_jpeg``, batched), for
indexing with a GPU: the CPU threads only read files, metadata and write thumbnails.

:func:`gpu_decoder` returns ``None`` (with a log line) when the device is not CUDA, or torchvision or nvjpeg
cannot decode there; callers then decode on the CPU as before. Results are close to, not bit-identical with,
the CPU path (another IDCT, no reduced-size DCT decoding, torch's antialiased bilinear instead of Pillow's):
a few 1/255 steps on pixels, well inside what changes a photo's vector visibly; both kinds may share an index.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass
class GPUImage:
    """One photo decoded on the GPU: the model input (3, S, S) float32 on the device, a thumbnail (h, w, 3)
    uint8 in host memory (``None`` unless asked for), and the decoded size after EXIF orientation."""

    tensor: torch.Tensor
    thumb: np.ndarray | None
    width: int
    height: int


def is_jpeg(data: bytes) -> bool:
    return data[:3] == JPEG_MAGIC


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation (1..8) of an encoded photo, read from its header only; 1 when absent or unreadable."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            value = im.getexif().get(274, 1)
        return int(value) if int(value) in range(1, 9) else 1
    except Exception:  # noqa: BLE001 - metadata is optional
        return 1


def orient(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """(C, H, W) as the EXIF ``orientation`` says it should be shown (what PIL's ``exif_transpose`` does)."""
    if orientation == 2:
        return image.flip(-1)
    if orientation == 3:
        return image.flip(-1).flip(-2)
    if orientation == 4:
        return image.flip(-2)
    if orientation == 5:
        return image.transpose(-1, -2)
    if orientation == 6:
        return image.transpose(-1, -2).flip(-1)
    if orientation == 7:
        return image.transpose(-1, -2).flip(-1).flip(-2)
    if orientation == 8:
        return image.transpose(-1, -2).flip(-2)
    return image


def thumb_size(width: int, height: int, size: int, max_aspect: float) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """((top, left, h, w) crop, (th, tw) thumbnail size) as :func:`~sfe_desktop.index.thumbs.thumbnail` makes it:
    the middle of a panorama at ``max_aspect``, then at most ``size`` on the longer side."""
    top, left, h, w = 0, 0, height, width
    if max(w, h) > max_aspect * min(w, h):
        if w > h:
            keep = max(1, round(max_aspect * h))
            left, w = (width - keep) // 2, keep
        else:
            keep = max(1, round(max_aspect * w))
            top, h = (height - keep) // 2, keep
    scale = min(1.0, size / max(w, h))
    return (top, left, h, w), (max(1, round(h * scale)), max(1, round(w * scale)))


class GPUDecoder:
    """Batched JPEG decode + resize on ``device`` to the model input (``size`` x ``size``, ``normalise`` as the
    backbone expects) and, optionally, to a thumbnail of at most ``thumb`` pixels."""

    def __init__(self, device: torch.device, size: int, normalise: str, thumb: int = 256, max_aspect: float = 4.0):
        self.device = device
        self.size = size
        self.normalise = normalise
        self.thumb = thumb
        self.max_aspect = max_aspect
        if normalise == "tflite":
            self._mean = torch.full((3, 1, 1), 127.0, device=device)
            self._std = torch.full((3, 1, 1), 128.0, device=device)
        else:
            self._mean = torch.tensor(_MEAN, device=device)[:, None, None] * 255.0
            self._std = torch.tensor(_STD, device=device)[:, None, None] * 255.0

    def decode_raw(self, datas: list[bytes]) -> list[torch.Tensor]:
        """(3, H, W) uint8 tensors on the device; one batched nvjpeg call (raises when any photo fails)."""
        from torchvision.io import ImageReadMode, decode_jpeg

        inputs = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]
        out = decode_jpeg(inputs, mode=ImageReadMode.RGB, device=self.device)
        return list(out) if isinstance(out, (list, tuple)) else [out]

    def resize(self, image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(3, h, w) float32 (0..255) of a (3, H, W) uint8 image, antialiased bilinear like Pillow's."""
        return F.interpolate(image[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)[0]

    def finish(self, image: torch.Tensor, orientation: int, thumbnail: bool) -> GPUImage:
        image = orient(image, orientation)
        h, w = int(image.shape[-2]), int(image.shape[-1])
        x = (self.resize(image, (self.size, self.size)) - self._mean) / self._std
        thumb = None
        if thumbnail:
            (top, left, ch, cw), out = thumb_size(w, h, self.thumb, self.max_aspect)
            small = self.resize(image[:, top:top + ch, left:left + cw], out)
            thumb = small.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().cpu().numpy()
        return GPUImage(x, thumb, w, h)

    def decode(self, datas: list[bytes], orientations: list[int], thumbnails: bool = True) -> list[GPUImage | None]:
        """Every photo of ``datas`` decoded; ``None`` for one nvjpeg cannot decode (the CPU path then tries it and
        says why). One batched call; when it fails, one call per photo."""
        if not datas:
            return []
        try:
            raws: list[torch.Tensor | None] = list(self.decode_raw(datas))
        except RuntimeError as exc:
            log.info("batched GPU decoding failed (%s); decoding the %d photos one by one", exc, len(datas))
            raws = []
            for d in datas:
                try:
                    raws.append(self.decode_raw([d])[0])
                except RuntimeError:
                    raws.append(None)
        return [None if r is None else self.finish(r, o, thumbnails) for r, o in zip(raws, orientations)]


def _probe_jpeg() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buf, "JPEG")
    return buf.getvalue()


def gpu_decoder(device: torch.device | str, size: int, normalise: str, thumb: int = 256) -> GPUDecoder | None:
    """A :class:`GPUDecoder` for ``device`` when it is a CUDA device that decodes a test JPEG; else ``None``, with
    a log line saying why (CPU decoding is used)."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    if not torch.cuda.is_available():
        log.info("GPU JPEG decoding: no CUDA device; decoding on the CPU")
        return None
    try:
        decoder = GPUDecoder(device, size, normalise, thumb)
        out = decoder.decode_raw([_probe_jpeg()])[0]
        if out.device.type != "cuda" or tuple(out.shape) != (3, 16, 16):
            raise RuntimeError(f"unexpected output {tuple(out.shape)} on {out.device}")
    except Exception as exc:  # noqa: BLE001 - torchvision without nvjpeg, an old driver ...: the CPU path stays
        log.info("GPU JPEG decoding unavailable (%s: %s); decoding on the CPU", type(exc).__name__, exc)
        return None
    return decoder
