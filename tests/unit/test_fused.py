"""The fused CPU copy of the image tower's lower part (model/fused.py): the same results as the modules it
replaces, a clean fallback, and no stale copy after the weights change."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from sfe_desktop.model import fused
from sfe_desktop.model.backbones import ImageBackbone
from sfe_desktop.model.runtime import tiny_runtime

TOP = 10
SCORE_TOL = 1e-4  # cosine scores of the two paths differ by float rounding only


def _reference(backbone: ImageBackbone, x: torch.Tensor) -> torch.Tensor:
    """The backbone's own modules (what ``lower`` ran before the fused copy)."""
    with torch.no_grad():
        return backbone.run_blocks(backbone.stem(x), 0)


def _pixels(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_tiny_lower_matches_its_modules():
    bb = tiny_runtime(0).model.image
    x = _pixels(6, bb.image_size)
    with torch.no_grad():
        out = bb.lower(x)
    assert bb.__dict__["_fused_lower"][0] is not None  # the fused copy ran
    torch.testing.assert_close(out, _reference(bb, x), atol=1e-5, rtol=1e-5)


def test_lite2_lower_matches_its_modules():
    pytest.importorskip("efficientnet_lite_pytorch")
    torch.manual_seed(0)
    bb = ImageBackbone("lite2", 260, trainable_blocks=1, pretrained=False).eval()
    with torch.no_grad():  # batch-norm statistics away from (0, 1), so that folding them is really tested
        for m in bb.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    x = _pixels(2, 260)
    ref = _reference(bb, x)
    with torch.no_grad():
        out = bb.lower(x)
    assert out.is_contiguous() and bb.__dict__["_fused_lower"][0] is not None
    torch.testing.assert_close(out, ref, atol=1e-4 * float(ref.abs().max()), rtol=1e-4)


def test_search_top10_is_the_same_with_and_without_the_fused_path(monkeypatch):
    rt = tiny_runtime(0)
    pixels = _pixels(40, rt.image_size, seed=1)
    fast = rt.encode_images(pixels)
    monkeypatch.setenv(fused.ENV_SWITCH, "0")
    rt.model.image.train().eval()  # a switch to training drops the cached copy: the switch is read again
    slow = rt.encode_images(pixels)
    assert rt.model.image.__dict__["_fused_lower"] == (None,)
    texts = rt.encode_texts(["a red dog", "a blue car near a tree", "the boat is white", "a black cat"])
    for q in range(len(texts)):
        a, b = fast.global_ @ texts.global_[q], slow.global_ @ texts.global_[q]
        np.testing.assert_allclose(a, b, atol=SCORE_TOL)
        top_a, top_b = np.argsort(-a)[:TOP], np.argsort(-b)[:TOP]
        # the same ten photos in the same order, except where two scores tie within the tolerance
        for i, j in zip(top_a, top_b):
            assert i == j or abs(b[i] - b[j]) <= SCORE_TOL


def test_unknown_layer_falls_back_to_the_modules_with_a_log_line(caplog):
    bb = tiny_runtime(0).model.image
    bb.stem.append(nn.GELU())  # not a layer the fused copy knows
    bb.train()  # switching to training drops the copy made when the runtime was built
    bb.eval()
    x = _pixels(2, bb.image_size)
    with caplog.at_level(logging.INFO, logger="sfe_desktop.model.backbones"), torch.no_grad():
        out = bb.lower(x)
    assert "fused CPU path is not available" in caplog.text and "GELU" in caplog.text
    torch.testing.assert_close(out, _reference(bb, x))


def test_the_copy_follows_new_weights_and_training_uses_the_modules():
    rt = tiny_runtime(0)
    bb = rt.model.image
    x = _pixels(2, bb.image_size)
    with torch.no_grad():
        bb.lower(x)
        state = {k: v + 0.05 for k, v in bb.state_dict().items()}
        bb.load_state_dict(state)  # drops the copy made from the old weights
        ref = _reference(bb, x)
        torch.testing.assert_close(bb.lower(x), ref, atol=1e-5 * float(ref.abs().max()), rtol=1e-5)
    bb.train()
    assert "_fused_lower" not in bb.__dict__
    bb.lower(x)  # training mode: the modules themselves, no copy made
    assert "_fused_lower" not in bb.__dict__
    assert not any(k.startswith("_fused") for k in bb.state_dict())
