"""The SFE model: shapes, normalisation, explanations, checkpoints, metrics and learning."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import stat

import numpy as np
import pytest
import torch

from sfe_desktop.errors import CheckpointError
from sfe_desktop.model.checkpoint import checkpoint_id, load_checkpoint, save_checkpoint, upgrade_checkpoint
from sfe_desktop.model.config import ModelConfig
from sfe_desktop.model.explain import merge_wordpieces
from sfe_desktop.model.runtime import SFERuntime, tiny_runtime
from sfe_desktop.train.loss import infonce, vsepp
from sfe_desktop.model.metrics import ranks, recall


@pytest.fixture(scope="module")
def rt():
    return tiny_runtime()


def test_encoders_give_normalised_vectors_and_local_features(rt):
    img = rt.encode_images(torch.rand(3, 3, rt.image_size, rt.image_size))
    txt = rt.encode_texts(["a red circle", "the blue square is on a white background", ""])
    h, w = rt.grid
    assert img.global_.shape == (3, rt.dim) and img.patches.shape == (3, h * w, rt.dim)
    assert img.patches.dtype == np.float16
    assert txt.global_.shape == (3, rt.dim) and txt.words.shape[:2] == txt.mask.shape
    np.testing.assert_allclose(np.linalg.norm(img.global_, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(txt.global_, axis=1), 1.0, atol=1e-5)
    assert txt.mask[0].sum() == len(txt.tokens[0])


def test_texts_grouped_by_length_come_back_in_order_with_the_features_of_each_alone(rt):
    from sfe_desktop.model.features import TEXT_BUCKET
    words = "a dog runs on the beach near two red boats while children play in the warm sand".split()
    rng = np.random.default_rng(3)
    texts = [" ".join(rng.choice(words, size=int(n))) for n in rng.integers(1, 16, size=2 * TEXT_BUCKET + 5)]
    many = rt.encode_texts(texts)
    assert many.texts == texts and [len(t) for t in many.tokens] == [int(m.sum()) for m in many.mask]
    for i in (0, 7, TEXT_BUCKET + 1, len(texts) - 1):  # in several of the length-sorted batches
        one = rt.encode_texts([texts[i]])
        n = int(one.mask[0].sum())
        np.testing.assert_allclose(many.global_[i], one.global_[0], atol=1e-5)
        np.testing.assert_allclose(many.words[i, :n].astype(np.float32), one.words[0, :n].astype(np.float32), atol=2e-3)
        assert not many.mask[i, n:].any()
        if one.bridge is not None:
            np.testing.assert_allclose(many.bridge[i], one.bridge[0], atol=1e-5)
    plain = rt.encode_texts(texts[:3], bridge=False)
    assert plain.bridge is None
    np.testing.assert_allclose(plain.global_, many.global_[:3], atol=1e-5)


def test_rerank_scores_one_query_against_a_batch(rt):
    img = rt.encode_images(torch.rand(7, 3, rt.image_size, rt.image_size))
    txt = rt.encode_texts(["a red circle", "a green triangle"])
    s = rt.rerank_text(txt[0], img)
    assert s.shape == (7,) and np.isfinite(s).all()
    # scoring one by one gives the same numbers as the batch
    single = np.array([rt.rerank_text(txt[0], img[i])[0] for i in range(7)])
    np.testing.assert_allclose(s, single, atol=1e-4)
    assert rt.rerank_image(img[2], txt).shape == (2,)


def test_explanation_shapes_and_attention_rows_sum_to_one(rt):
    img = rt.encode_images(torch.rand(1, 3, rt.image_size, rt.image_size))
    txt = rt.encode_texts(["a red dog near a tree"])
    e = rt.explain(txt, img)
    h, w = rt.grid
    assert e.words == ["a", "red", "dog", "near", "a", "tree"] and e.grid == (h, w)
    assert e.attention.shape == (len(e.words), h * w)
    np.testing.assert_allclose(e.attention.sum(1), 1.0, atol=1e-5)
    names = e.concepts.names
    assert names and e.concepts.cooccurrence.shape == (len(names), len(names))
    assert all(c.name in rt.concept_names for c in e.concepts.image + e.concepts.text)
    ids = {n.id for n in e.neighbours.nodes}
    assert "query" in ids and len(ids) > 2
    assert all(ed.source in ids and ed.target in ids for ed in e.neighbours.edges)
    assert e.photo is None and e.neighbours.node("result").path is None


def test_explanation_json_is_strict(rt):
    img = rt.encode_images(torch.rand(1, 3, rt.image_size, rt.image_size))
    e = rt.explain(rt.encode_texts(["a red dog"]), img, photo="/photos/dog.jpg")
    e.attention[0, 0] = np.nan  # a number JSON cannot hold
    data = json.loads(e.to_json())
    assert data["attention"][0][0] is None and len(data["attention"]) == len(e.words)
    assert data["photo"] == "/photos/dog.jpg" and data["grid"] == list(rt.grid)
    result = next(n for n in data["neighbours"]["nodes"] if n["id"] == "result")
    assert result["path"] == "/photos/dog.jpg" and result["label"] == "result photo"
    assert set(data["concepts"]) == {"image", "text", "names", "cooccurrence"}
    assert "NaN" not in e.to_json() and data == json.loads(json.dumps(e.to_dict(), allow_nan=False))


def test_wordpieces_merge_into_words_and_rows_stay_distributions():
    rows = np.array([[1, 0], [0.5, 0.5], [0, 1], [0.2, 0.8], [1, 0]], dtype=np.float32)
    words, merged = merge_wordpieces(["[CLS]", "snow", "##board", "dog", "[SEP]"], rows)
    assert words == ["snowboard", "dog"]
    np.testing.assert_allclose(merged, [[0.25, 0.75], [0.2, 0.8]])


def test_checkpoint_round_trip_is_exact(rt, tmp_path):
    save_checkpoint(rt.model, tmp_path / "ck", rt.meta, rt.corpus)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "corpus.json", "model.safetensors"]
    umask = os.umask(0)
    os.umask(umask)
    for f in (tmp_path / "ck").iterdir():  # every file as any new file of the user (safetensors' own writer: 0600)
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f.name
    model, meta, corpus = load_checkpoint(tmp_path / "ck")
    a, b = rt.model.state_dict(), model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        tol = 1e-3 if k.startswith(("mem_", "proto_", "bridge.prompts")) else 0  # these are stored as float16
        assert torch.allclose(a[k].float(), b[k].float(), atol=tol), k
    assert corpus == rt.corpus and meta["concepts"] == rt.meta["concepts"] and "captions" not in meta
    rt2 = SFERuntime(model, meta, torch.device("cpu"), "x", corpus=corpus)
    x = torch.rand(2, 3, rt.image_size, rt.image_size)
    np.testing.assert_allclose(rt.encode_images(x).global_, rt2.encode_images(x).global_, atol=2e-3)


def test_the_pretrained_towers_fine_tuned_tops_are_stored_in_float16():
    from sfe_desktop.model.checkpoint import stored_half
    from sfe_desktop.model.config import ModelConfig

    real = ModelConfig()  # Lite2 and MiniLM: only their fine-tuned tops are saved, as float16
    assert stored_half("text.layers.4.attention.self.query.weight", real)
    assert stored_half("image.blocks.20.0.weight", real) and stored_half("mem_txt", real)
    assert not stored_half("img_proj.weight", real) and not stored_half("reranker.word_score.weight", real)
    tiny = ModelConfig.tiny()  # a test tower is saved whole, in float32
    assert not stored_half("text.layers.0.weight", tiny) and not stored_half("image.blocks.0.weight", tiny)


def test_corrupt_truncated_and_pickled_checkpoints_are_rejected(rt, tmp_path):
    ck = save_checkpoint(rt.model, tmp_path / "ck", rt.meta, rt.corpus)
    weights = (ck / "model.safetensors").read_bytes()
    (ck / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(ck)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (ck / "model.safetensors").write_bytes(pickle.dumps({"w": Evil()}))
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        load_checkpoint(ck)

    (ck / "model.safetensors").write_bytes(weights)
    cfg = json.loads((ck / "config.json").read_text())
    (ck / "config.json").write_text(json.dumps({**cfg, "version": 99}))
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(ck)
    (ck / "config.json").write_text(json.dumps({**cfg, "model": {**cfg["model"], "dim": 48}}))
    with pytest.raises(CheckpointError, match="shape|match"):
        load_checkpoint(ck)
    (ck / "config.json").write_text("{\"format\": ")
    with pytest.raises(CheckpointError, match="config.json"):
        load_checkpoint(ck)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nothing")
    (ck / "config.json").write_text(json.dumps(cfg))
    (ck / "corpus.json").unlink()
    with pytest.raises(CheckpointError, match="corpus.json: missing"):
        load_checkpoint(ck)


def test_a_checkpoint_of_the_first_layout_loads_and_upgrades(rt, tmp_path):
    """Layout 1 kept the corpus in config.json: it still loads, with the same id as before, and upgrading it
    moves the corpus to corpus.json without touching the tensors."""
    ck = save_checkpoint(rt.model, tmp_path / "ck", rt.meta, rt.corpus)
    cfg = json.loads((ck / "config.json").read_text())
    (ck / "config.json").write_text(json.dumps({**cfg, "version": 1, **rt.corpus.to_dict()}, indent=1))
    (ck / "corpus.json").unlink()
    weights = (ck / "model.safetensors").read_bytes()
    old_id = hashlib.sha256((ck / "config.json").read_bytes() + weights).hexdigest()[:16]
    assert checkpoint_id(ck) == old_id  # an index built with it stays valid
    model, meta, corpus = load_checkpoint(ck)
    assert corpus == rt.corpus and "captions" not in meta and meta["version"] == 2

    assert upgrade_checkpoint(ck) and not upgrade_checkpoint(ck)
    assert json.loads((ck / "config.json").read_text()) == {**cfg, "version": 2}
    assert json.loads((ck / "corpus.json").read_text()) == rt.corpus.to_dict()
    assert (ck / "model.safetensors").read_bytes() == weights and checkpoint_id(ck) != old_id
    upgraded, _, again = load_checkpoint(ck)
    assert again == rt.corpus
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), upgraded.state_dict().values()))
    upgraded_id = checkpoint_id(ck)
    (ck / "corpus.json").write_text(json.dumps({**rt.corpus.to_dict(), "captions": ["another caption"]}))
    assert checkpoint_id(ck) != upgraded_id  # the id covers the corpus file too


def test_recall_matches_a_hand_computed_example():
    # 3 images, 2 captions each (caption j belongs to image j // 2)
    cap_img = np.array([0, 0, 1, 1, 2, 2])
    sims = np.array([
        [0.9, 0.1, 0.8, 0.0, 0.0, 0.0],   # image 0: its caption 0 is ranked first -> rank 0
        [0.9, 0.0, 0.1, 0.2, 0.3, 0.0],   # image 1: best own caption (3, 0.2) after 0 (0.9), 4 (0.3) -> rank 2
        [0.0, 0.0, 0.0, 0.0, 0.1, 0.5],   # image 2: caption 5 first -> rank 0
    ])
    i2t, t2i = ranks(sims, cap_img)
    assert i2t.tolist() == [0, 2, 0]
    # caption 0: image 0 (0.9) ties with image 1 (0.9): ties count against -> rank 1;
    # captions 2 and 4 have a higher wrong image; captions 1, 3, 5 rank their image first
    assert t2i.tolist() == [1, 0, 1, 0, 1, 0]
    m = recall(sims, cap_img)
    assert m["i2t_r1"] == pytest.approx(200 / 3) and m["i2t_r5"] == 100
    assert m["t2i_r1"] == pytest.approx(50) and m["t2i_r5"] == 100
    assert m["rsum"] == pytest.approx(200 / 3 + 100 + 100 + 50 + 100 + 100)


def test_losses_prefer_aligned_pairs():
    good = torch.eye(4) * 0.9
    bad = torch.full((4, 4), 0.5)
    assert infonce(good) < infonce(bad)
    assert vsepp(good) == 0 and vsepp(bad) > 0


def test_baseline_switches_everything_off():
    cfg = ModelConfig.tiny(use_patch=False, use_instance=False, use_neighbour=False, use_step2=False)
    assert cfg.is_baseline and not ModelConfig.tiny().is_baseline
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_caption_corpus_is_deduplicated_and_matches_encoding(rt):
    from sfe_desktop.model.runtime import unique_captions

    assert unique_captions(["A dog .", "a dog", "  a  dog .", "a cat"]) == (["A dog", "a cat"], [0, 3])
    texts, vecs = rt.caption_corpus()
    assert len(texts) == len(set(t.lower() for t in texts)) == len(vecs)
    # the corpus vectors are what encoding the caption through the whole model indexes
    enc = rt.encode_texts(texts[:5], hub=True).index_vectors()
    assert vecs.shape[1] == rt.vector_dim
    np.testing.assert_allclose(vecs[:5], enc, atol=1e-2)


def test_caption_corpus_from_the_memory_bank_matches_encoding():
    """Without a bridge the corpus vectors come from the memory bank (no text tower): the same vectors."""
    from sfe_desktop.model.runtime import tiny_runtime

    rt = tiny_runtime(1, bridge_dim=0)
    texts, vecs = rt.caption_corpus()
    enc = rt.encode_texts(texts[:5]).global_
    np.testing.assert_allclose((vecs[:5] * enc).sum(1), 1.0, atol=1e-2)


def test_class_prompts_are_embedded_as_at_inference_whatever_the_models_mode():
    """A model fresh from its constructor is in training mode (as the trainer builds it): the class prompts must not
    be embedded with dropout on, and the model's mode is left as it was."""
    from sfe_desktop.model.build import init_bridge
    from sfe_desktop.model.config import ModelConfig
    from sfe_desktop.model.sfe import SFEModel

    torch.manual_seed(0)
    model = SFEModel(ModelConfig.tiny(), pretrained=False)
    for m in model.text.modules():  # the tiny tower has no dropout; MiniLM's is 0.1
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.5
    assert model.training and model.cfg.bridge_dim
    modes = [m.training for m in model.modules()]
    init_bridge(model)
    assert [m.training for m in model.modules()] == modes
    first = model.bridge.prompts.clone()
    init_bridge(model)
    torch.testing.assert_close(model.bridge.prompts, first)  # dropout would draw other prompts each time
    model.eval()
    init_bridge(model)
    torch.testing.assert_close(model.bridge.prompts, first)


def test_a_centred_bridge_gives_a_photo_the_classifier_cannot_place_no_pull_towards_every_text():
    """Every class prompt shares "a photo of a": uncentred, a photo whose class probabilities are spread out lies
    near the prompts' mean and scores high with any text. Centred, its cosines with the texts average about 0 (only
    its slight leanings count), while a photo of one class still scores highest with that class's prompt. A checkpoint written before the option reads as
    uncentred."""
    from sfe_desktop.model.bridge import PROMPT
    from sfe_desktop.model.build import init_bridge
    from sfe_desktop.model.sfe import SFEModel

    torch.manual_seed(0)
    model = SFEModel(ModelConfig.tiny(), pretrained=False).eval()
    names = init_bridge(model)
    bridge = model.bridge
    assert bridge.centered and model.cfg.bridge_centered
    enc = model.text.tokenize([PROMPT.format(n) for n in names] + ["a red ball on the grass", "qwerty zxcv"])
    with torch.no_grad():
        texts = bridge.text_vectors(bridge.sentence(model.text.lower(enc["input_ids"], enc["attention_mask"]),
                                                    enc["attention_mask"]))
        flat = 0.1 * torch.randn(1, len(names))  # (photo, classes) pooled logits: no class stands out
        sharp = flat.clone()
        sharp[..., 3] = 12.0  # one class dominates
        centred = bridge.image_vectors(torch.cat([flat, sharp]))
        bridge.centered = False
        plain = bridge.image_vectors(torch.cat([flat, sharp]))
        plain_texts = bridge.text_vectors(bridge.sentence(model.text.lower(enc["input_ids"], enc["attention_mask"]),
                                                          enc["attention_mask"]))
    assert float((plain[0] @ plain_texts.T).min()) > 0.5  # uncentred: the vague photo is close to every text
    assert abs(float((centred[0] @ texts.T).mean())) < 0.15  # centred: no pull towards texts in general
    assert int((centred[1] @ texts[: len(names)].T).argmax()) == 3  # a clear photo still names its class
    old = ModelConfig.from_dict({k: v for k, v in ModelConfig.tiny().to_dict().items() if k != "bridge_centered"})
    assert old.bridge_centered is False and SFEModel(old, pretrained=False).bridge.centered is False
