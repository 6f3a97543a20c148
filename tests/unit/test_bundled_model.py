"""The bundled checkpoint (resources/sfe-default) with the real backbones: it loads, encodes a photo and a caption,
re-ranks and explains. Needs the backbone weight packages (dependencies of the project, installed by CI)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from sfe_desktop.model.checkpoint import FORMAT_VERSION, read_checkpoint
from sfe_desktop.model.runtime import SFERuntime
from sfe_desktop.settings import DEFAULT_CHECKPOINT

BUNDLED = Path(__file__).resolve().parents[2] / "resources" / "sfe-default"


@pytest.fixture(scope="module")
def bundled() -> SFERuntime:
    return SFERuntime.load(BUNDLED, device="cpu")


def photo() -> Image.Image:
    """A generated photo: noise under a red disc on green."""
    rng = np.random.default_rng(0)
    pixels = np.clip(np.array([60, 150, 70]) + rng.normal(0, 25, (300, 400, 3)), 0, 255).astype(np.uint8)
    im = Image.fromarray(pixels)
    ImageDraw.Draw(im).ellipse((140, 80, 280, 220), fill=(210, 30, 30))
    return im


def test_the_default_checkpoint_is_the_bundled_one_in_the_current_layout():
    assert DEFAULT_CHECKPOINT.resolve() == BUNDLED
    meta, corpus = read_checkpoint(BUNDLED)
    assert json.loads((BUNDLED / "config.json").read_text())["version"] == FORMAT_VERSION == meta["version"]
    assert "captions" not in json.loads((BUNDLED / "config.json").read_text())
    assert len(corpus.captions) == len(corpus.caption_image) and max(corpus.caption_image) < len(corpus.images)


def test_bundled_model_encodes_reranks_and_explains(bundled):
    rt = bundled
    assert (rt.dim, rt.grid, rt.image_size) == (256, (9, 9), 260) and rt.rerank_k == rt.cfg.rerank_k > 0
    assert rt.model.mem_txt.shape[0] == len(rt.corpus.captions) > 1000
    with torch.inference_mode():
        image = rt.encode_images(rt.preprocess(photo())[None], logits=rt.model.bridge is not None)
    text = rt.encode_texts(["a red ball on the green grass", "a man riding a bicycle"])
    assert image.global_.shape == (1, 256) and image.patches.shape == (1, 81, 256)
    assert image.patches.dtype == np.float16 and np.isfinite(image.patches).all()
    np.testing.assert_allclose(np.linalg.norm(image.global_, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(text.global_, axis=1), 1.0, atol=1e-5)
    assert text.tokens[0][0] == "[CLS]" and text.words.shape[:2] == text.mask.shape
    step2 = rt.rerank_image(image, text)
    assert step2.shape == (2,) and np.isfinite(step2).all()

    e = rt.explain(text[0], image, photo="/photos/red.jpg")
    assert e.words == ["a", "red", "ball", "on", "the", "green", "grass"] and e.grid == (9, 9)
    assert e.attention.shape == (7, 81)
    np.testing.assert_allclose(e.attention.sum(1), 1.0, atol=1e-4)
    assert e.score == pytest.approx(float(step2[0]), abs=1e-4)
    assert e.concepts.names and set(e.concepts.names) <= set(rt.concept_names)
    captions = {n.label for n in e.neighbours.nodes if n.kind == "text"}
    assert captions and captions <= set(rt.corpus.captions)  # the graph names training captions
    assert json.loads(e.to_json())["photo"] == "/photos/red.jpg"
    if rt.model.bridge is not None:  # ImageNet names: the photo's classes, and "ball" names one of them
        assert len(e.classes) == 5 and all(c.name in rt.class_names for c in e.classes)
        assert "ball" in e.word_classes[e.words.index("ball")].name and e.grounding[e.words.index("ball")] > 0
        assert e.word_classes[e.words.index("the")] is None
        assert rt.pair_confidence(text[0], image) > rt.pair_confidence(rt.encode_texts(["xqzv plorf blargh"]), image)
