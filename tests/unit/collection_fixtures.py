"""Fixtures for the collection tests (imported by the test modules; no Qt, no GPU)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def runtime():
    from sfe_desktop.model.runtime import tiny_runtime

    return tiny_runtime(0)


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    """Keep every cache (caption corpus vectors, fallback index folders) inside the test folder."""
    monkeypatch.setenv("SFE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SFE_DEVICE", raising=False)
    return tmp_path / "data"


def make_image(path, seed: int, size=(64, 48), fmt: str | None = None, exif_date: str | None = None) -> None:
    """A small random photo (different seeds give different pictures)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (1, 1, 3))
    pixels = np.clip(base + rng.integers(-60, 60, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    im = Image.fromarray(pixels)
    kwargs = {}
    if exif_date:
        exif = Image.Exif()
        exif.get_ifd(0x8769)[36867] = exif_date
        kwargs["exif"] = exif
    im.save(path, fmt, **kwargs)


@pytest.fixture
def photos(tmp_path):
    """A folder of 8 JPEG/PNG photos, two of them in a subfolder."""
    root = tmp_path / "photos"
    (root / "trip").mkdir(parents=True)
    for i in range(6):
        make_image(root / f"p{i}.jpg", i, exif_date="2021:07:0%d 10:11:12" % (i + 1))
    make_image(root / "trip" / "a.png", 10)
    make_image(root / "trip" / "b.webp", 11)
    return root


def cli_uses(monkeypatch, runtime) -> None:
    """The command line loads ``runtime`` whatever checkpoint it is given, and takes that checkpoint for the one
    ``runtime`` was loaded from (its check of an index's checkpoint, made before the model loads)."""
    from sfe_desktop.model.runtime import SFERuntime

    monkeypatch.setattr(SFERuntime, "load", classmethod(lambda cls, checkpoint=None, device="auto": runtime))
    monkeypatch.setattr("sfe_desktop.model.layout.checkpoint_id", lambda directory: runtime.checkpoint_id)
