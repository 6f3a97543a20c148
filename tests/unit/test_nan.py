"""NaN is never scored as perfect: recall counts ties and non-finite scores as misses, training stops on a
non-finite loss and keeps the last finite epoch, checkpoints holding non-finite tensors are refused, JSON is strict."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sfe_desktop.data import strict_json
from sfe_desktop.errors import CheckpointError, TrainingDiverged
from sfe_desktop.model.checkpoint import WEIGHTS_FILE, load_checkpoint, save_checkpoint
from sfe_desktop.model.runtime import tiny_runtime
from sfe_desktop.model.metrics import ranks, recall


def naive_ranks(sims, cap_img):
    """The definition, one query at a time: the number of wrong items scored at or above the best correct one
    (a wrong item with a non-finite score always counts); a query whose correct items are all non-finite misses."""
    n_img, n_cap = sims.shape
    ok = np.isfinite(sims)
    i2t = []
    for i in range(n_img):
        own = [j for j in range(n_cap) if cap_img[j] == i and ok[i, j]]
        if not own:
            i2t.append(n_cap)
            continue
        best = max(sims[i, j] for j in own)
        i2t.append(sum(1 for j in range(n_cap) if cap_img[j] != i and (not ok[i, j] or sims[i, j] >= best)))
    t2i = []
    for j in range(n_cap):
        g = cap_img[j]
        if not ok[g, j]:
            t2i.append(n_img)
            continue
        t2i.append(sum(1 for i in range(n_img) if i != g and (not ok[i, j] or sims[i, j] >= sims[g, j])))
    return np.array(i2t), np.array(t2i)


@pytest.mark.parametrize("seed", range(6))
def test_ranks_match_the_definition_with_ties_and_non_finite_scores(seed):
    rng = np.random.default_rng(seed)
    n_img = 7
    cap_img = rng.integers(0, n_img, 20)
    sims = np.round(rng.normal(size=(n_img, 20)), 1)        # rounded: many ties
    bad = rng.random(sims.shape) < 0.15
    sims[bad] = rng.choice([np.nan, np.inf, -np.inf], bad.sum())
    got, want = ranks(sims, cap_img), naive_ranks(sims, cap_img)
    assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()


def test_an_all_nan_or_constant_model_scores_zero_not_600():
    cap_img = np.repeat(np.arange(20), 3)
    for value in (np.nan, np.inf, 0.5):   # every item ties with 19 or more wrong ones: a miss even at R@10
        m = recall(np.full((20, 60), value), cap_img)
        assert m["rsum"] == 0.0, value


def test_a_checkpoint_with_non_finite_weights_is_refused_in_one_line(tmp_path):
    from safetensors.torch import load_file, save_file

    rt = tiny_runtime(0)
    save_checkpoint(rt.model, tmp_path / "ck", dict(rt.meta), rt.corpus)
    tensors = load_file(str(tmp_path / "ck" / WEIGHTS_FILE))
    key = sorted(k for k, t in tensors.items() if t.is_floating_point())[0]
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[0] = float("nan")
    save_file(tensors, str(tmp_path / "ck" / WEIGHTS_FILE))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "ck")
    assert "\n" not in str(err.value) and key in str(err.value) and "non-finite" in str(err.value)


def test_strict_json_never_writes_nan_and_never_reads_it():
    text = strict_json.dumps({"rsum": float("nan"), "r1": np.float32("inf"), "rows": np.array([1.5, np.nan])})
    assert json.loads(text, parse_constant=lambda t: pytest.fail(f"{t} written")) == {
        "rsum": None, "r1": None, "rows": [1.5, None]}
    for bad in ("NaN", '{"a": Infinity}', "[-Infinity]", "1e999", "[" * 5000 + "]" * 5000):
        with pytest.raises(ValueError) as err:
            strict_json.loads(bad)
        assert "\n" not in str(err.value)
    assert strict_json.loads("[" * 32 + "]" * 32) is not None
    with pytest.raises(ValueError, match="nested too deeply"):
        strict_json.loads("[" * 33 + "]" * 33)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from synthetic import make_dataset

    root = tmp_path_factory.mktemp("synthetic")
    return make_dataset(root, n_train_repeat=1), root


def _trainer(synthetic, out, epochs=3, lr=3e-3):
    from sfe_desktop.data.datasets import load_karpathy
    from sfe_desktop.model.config import ModelConfig
    from sfe_desktop.train.loop import TrainConfig, Trainer

    path, root = synthetic
    train = load_karpathy(path, root / "images", "train")
    val = load_karpathy(path, root / "images", "val")
    torch.manual_seed(0)
    return Trainer(ModelConfig.tiny(), train, val, TrainConfig(epochs=epochs, batch_size=16, lr=lr, patience=99),
                   torch.device("cpu"), None, out, log_fn=lambda s: None)


def _nan_from_epoch(monkeypatch, first_bad: int) -> None:
    """The Step-1 loss becomes NaN from epoch ``first_bad`` on (what a learning rate of 1e3 does)."""
    from sfe_desktop.train import loop

    epoch = {"now": 0}
    real_epoch, real_loss = loop.Trainer.train_epoch, loop.infonce

    def train_epoch(self, n, *args, **kwargs):
        epoch["now"] = n
        return real_epoch(self, n, *args, **kwargs)

    monkeypatch.setattr(loop.Trainer, "train_epoch", train_epoch)
    monkeypatch.setattr(loop, "infonce", lambda *a, **k: real_loss(*a, **k) * (
        float("nan") if epoch["now"] >= first_bad else 1.0))


def test_training_stops_on_a_nan_loss_and_keeps_the_last_finite_epoch(synthetic, tmp_path, monkeypatch):
    _nan_from_epoch(monkeypatch, first_bad=2)
    trainer = _trainer(synthetic, tmp_path / "ck")
    result = trainer.fit()
    assert result["best_epoch"] == 1 and [h["epoch"] for h in result["history"]] == [1]
    assert "loss became nan at epoch 2" in result["stopped"]
    assert np.isfinite(result["best_rsum"])
    model, meta, _ = load_checkpoint(tmp_path / "ck")      # the epoch-1 weights, all finite
    assert meta["training"]["epoch"] == 1
    assert all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point())


def test_training_that_diverges_in_the_first_epoch_writes_no_checkpoint(synthetic, tmp_path, monkeypatch):
    _nan_from_epoch(monkeypatch, first_bad=1)
    with pytest.raises(TrainingDiverged, match="no checkpoint was written"):
        _trainer(synthetic, tmp_path / "ck").fit()
    assert not (tmp_path / "ck" / WEIGHTS_FILE).exists()


def test_the_indexer_never_stores_non_finite_vectors(tmp_path, monkeypatch):
    from collection_fixtures import make_image

    from sfe_desktop.search import Collection

    monkeypatch.setenv("SFE_DATA_DIR", str(tmp_path / "data"))
    rt = tiny_runtime(0)
    (tmp_path / "photos").mkdir()
    for i in range(4):
        make_image(tmp_path / "photos" / f"p{i}.jpg", i)
    real, calls = rt.encode_images, []

    def encode(batch):
        feats = real(batch)
        calls.append(1)
        if len(calls) == 2:                     # the second photo's features come out NaN
            feats.global_[0, 0] = np.nan
        return feats

    monkeypatch.setattr(rt, "encode_images", encode)
    with Collection.open(tmp_path / "photos", rt, batch_size=1, workers=1) as col:
        summary = col.index()
        skipped = col.skipped()
        results = col.search_text("a photo", top=10, rerank_k=0)
    assert summary.indexed == 3 and len(skipped) == 1 and skipped[0][1] == "the model gave non-finite features"
    assert len(results) == 3 and all(np.isfinite(r.score) for r in results)
