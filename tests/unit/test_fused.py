"""The fast CPU copies of the image tower's lower and upper parts and of the label bridge's top (model/fused.py),
in PyTorch and through ONNX Runtime: the same results as the modules they replace, a clean fallback, and no stale
copy after the weights change."""
from __future__ import annotations

import logging
import sys

import numpy as np
import pytest
import torch
from torch import nn

from sfe_desktop.model import fused
from sfe_desktop.model.backbones import ImageBackbone
from sfe_desktop.model.runtime import tiny_runtime

TOP = 10
SCORE_TOL = 1e-4  # cosine scores of the two paths differ by float rounding only


def _copy(owner, part: str):
    """The copy ``owner`` made of ``part`` (a :class:`fused.OrtRunner`), or None when it runs its modules."""
    return owner.__dict__[fused.CACHE][part]


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
    assert _copy(bb, "lower") is not None  # the fused copy ran
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
    assert out.is_contiguous() and _copy(bb, "lower") is not None
    torch.testing.assert_close(out, ref, atol=1e-4 * float(ref.abs().max()), rtol=1e-4)


def test_search_top10_is_the_same_with_and_without_the_fused_path(monkeypatch):
    rt = tiny_runtime(0)
    pixels = _pixels(40, rt.image_size, seed=1)
    fast = rt.encode_images(pixels)
    monkeypatch.setenv(fused.ENV_SWITCH, "0")
    rt.model.image.train().eval()  # a switch to training drops the cached copy: the switch is read again
    slow = rt.encode_images(pixels)
    assert _copy(rt.model.image, "lower") is None
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
    with caplog.at_level(logging.INFO, logger="sfe_desktop.model.fused"), torch.no_grad():
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
    assert fused.CACHE not in bb.__dict__
    bb.lower(x)  # training mode: the modules themselves, no copy made
    assert fused.CACHE not in bb.__dict__
    assert not any(k.startswith("_fast") for k in bb.state_dict())


def _lite2(seed: int = 0) -> ImageBackbone:
    """Lite2 at 260 px with random weights and batch-norm statistics away from (0, 1)."""
    pytest.importorskip("efficientnet_lite_pytorch")
    torch.manual_seed(seed)
    bb = ImageBackbone("lite2", 260, trainable_blocks=1, pretrained=False).eval()
    with torch.no_grad():
        for m in bb.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return bb


def test_lite2_through_onnx_runtime_matches_its_modules():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    bb = _lite2()
    x = _pixels(3, 260)
    with torch.no_grad():
        ref_low = _reference(bb, x)
        ref_up = bb._run_upper(ref_low)
        low = bb.lower(x)
        up = bb.upper(low)
    runner = _copy(bb, "lower")
    assert runner._sessions and runner.shape == (3, 260, 260)  # the batch of 3 ran through ONNX Runtime
    assert _copy(bb, "upper")._sessions
    torch.testing.assert_close(low, ref_low, atol=1e-4 * float(ref_low.abs().max()), rtol=1e-4)
    torch.testing.assert_close(up, ref_up, atol=1e-4 * float(ref_up.abs().max()), rtol=1e-4)


def test_onnx_runtime_serves_only_batches_of_the_exported_shape():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    bb = tiny_runtime(0).model.image
    bb.train().eval()  # drops the copies made while the runtime was built and calibrated
    with torch.no_grad():
        one = bb.lower(_pixels(1, bb.image_size))  # one photo: the PyTorch copy, nothing exported
        runner = _copy(bb, "lower")
        assert runner._model is None and not runner._sessions
        x = _pixels(4, bb.image_size, seed=2)
        four = bb.lower(x)  # exported now, for this shape
        assert runner._sessions and runner.shape == (3, bb.image_size, bb.image_size)
        torch.testing.assert_close(four, _reference(bb, x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(one, _reference(bb, _pixels(1, bb.image_size)), atol=1e-5, rtol=1e-5)
        other = _pixels(2, bb.image_size + 16)  # another size: the PyTorch copy
        torch.testing.assert_close(bb.lower(other), _reference(bb, other), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("how", ["not installed", "switched off"])
def test_without_onnx_runtime_the_pytorch_copy_serves(monkeypatch, caplog, how):
    if how == "not installed":
        monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if it were not installed
    else:
        monkeypatch.setenv(fused.ORT_SWITCH, "0")
    bb = tiny_runtime(0).model.image
    bb.train().eval()  # drops the copies made while the runtime was built and calibrated
    x = _pixels(4, bb.image_size)
    with caplog.at_level(logging.INFO, logger="sfe_desktop.model.fused"), torch.no_grad():
        out = bb.lower(x)
    runner = _copy(bb, "lower")
    assert runner._model == b"" and not runner._sessions  # refused once, remembered
    assert ("ONNX Runtime path not available" in caplog.text) == (how == "not installed")
    torch.testing.assert_close(out, _reference(bb, x), atol=1e-5, rtol=1e-5)


def test_bridge_vectors_from_pooled_logits_match_the_patch_logits():
    """Search encodes a photo's bridge vector from the classifier on its pooled grid, explanations from the mean of
    its patch logits: the classifier is linear, so both give the same vector; the bridge's fused top copy gives
    the same logits as its modules."""
    rt = tiny_runtime(0)
    pixels = _pixels(5, rt.image_size, seed=3)
    plain = rt.encode_images(pixels)
    with_logits = rt.encode_images(pixels, logits=True)
    assert plain.bridge is not None and with_logits.logits is not None
    np.testing.assert_allclose(plain.bridge, with_logits.bridge, atol=1e-4)  # float rounding
    bridge = rt.model.bridge
    with torch.no_grad():
        lower = rt.model.image.lower(pixels)
        assert _copy(bridge, "image_top") is not None
        ref = bridge.classifier(bridge.image_top(lower).flatten(2).transpose(1, 2))
    torch.testing.assert_close(bridge.patch_logits(lower), ref, atol=1e-4, rtol=1e-4)
