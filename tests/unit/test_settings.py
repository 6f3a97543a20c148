"""Device choice: auto, explicit, SFE_DEVICE override and missing CUDA."""
from __future__ import annotations

import pytest
import torch

from sfe_desktop.settings import data_dir, pick_device
from sfe_desktop.errors import SFEError


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv("SFE_DEVICE", raising=False)


@pytest.mark.parametrize("cuda", [True, False])
def test_auto_follows_cuda_availability(monkeypatch, cuda):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert pick_device("auto").type == ("cuda" if cuda else "cpu")
    assert pick_device(None).type == ("cuda" if cuda else "cpu")
    assert pick_device("cpu").type == "cpu"


def test_cuda_requested_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SFEError, match="CUDA is not available"):
        pick_device("cuda")
    monkeypatch.setenv("SFE_DEVICE", "cuda")
    with pytest.raises(SFEError, match="SFE_DEVICE"):
        pick_device("cpu")


def test_env_overrides_the_argument(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("SFE_DEVICE", "cpu")
    assert pick_device("cuda").type == "cpu"
    monkeypatch.setenv("SFE_DEVICE", "cuda:1")
    assert pick_device("auto") == torch.device("cuda:1")
    monkeypatch.setenv("SFE_DEVICE", "cuda:5")
    with pytest.raises(SFEError, match="does not exist"):
        pick_device()
    monkeypatch.setenv("SFE_DEVICE", "tpu")
    with pytest.raises(SFEError, match="unknown device"):
        pick_device()


def test_data_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SFE_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
