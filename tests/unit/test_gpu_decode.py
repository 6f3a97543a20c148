"""GPU JPEG decoding (data/gpu_decode.py): the parts that run anywhere, and its clean absence without CUDA.
The decoding itself is checked against the CPU path in test_cuda.py (run on a GPU machine)."""
from __future__ import annotations

import io
import logging

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from sfe_desktop.data.gpu_decode import exif_orientation, gpu_decoder, is_jpeg, orient, thumb_size
from sfe_desktop.index.thumbs import MAX_ASPECT, thumbnail


def _jpeg(orientation: int | None = None, size=(7, 5)) -> bytes:
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    buf = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[274] = orientation
    im.save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_turns_pixels_as_pil_exif_transpose_does(orientation):
    data = _jpeg(orientation)
    assert is_jpeg(data) and exif_orientation(data) == orientation
    with Image.open(io.BytesIO(data)) as im:
        raw = np.asarray(im.convert("RGB"))
        shown = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    out = orient(torch.from_numpy(raw.copy()).permute(2, 0, 1), orientation).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(out, shown)


def test_no_exif_reads_as_upright_and_png_is_not_jpeg():
    assert exif_orientation(_jpeg()) == 1
    assert exif_orientation(b"not an image") == 1
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "PNG")
    assert not is_jpeg(buf.getvalue())


@pytest.mark.parametrize("size", [(4000, 3000), (3000, 4000), (20000, 100), (100, 20000), (120, 80), (256, 256)])
def test_thumbnail_geometry_is_the_cpu_thumbnails(size):
    (top, left, h, w), out = thumb_size(size[0], size[1], 256, MAX_ASPECT)
    ref = thumbnail(Image.new("RGB", size), 256)
    assert (out[1], out[0]) == ref.size
    assert 0 <= top and top + h <= size[1] and 0 <= left and left + w <= size[0]


def test_no_gpu_decoder_on_the_cpu():
    assert gpu_decoder("cpu", 64, "tflite") is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback where there is no CUDA")
def test_no_gpu_decoder_without_cuda_says_why(caplog):
    with caplog.at_level(logging.INFO, logger="sfe_desktop.data.gpu_decode"):
        assert gpu_decoder("cuda", 64, "tflite") is None
    assert "no CUDA device" in caplog.text
