"""A tiny SFE model learns a tiny synthetic dataset; train and evaluate work end to end from the CLI."""
from __future__ import annotations

import json

import pytest
import torch

from sfe_desktop.cli import main
from sfe_desktop.data.datasets import load_karpathy
from sfe_desktop.model.config import ModelConfig
from sfe_desktop.train.loop import TrainConfig, Trainer
from synthetic import make_dataset


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    return make_dataset(root), root


def test_tiny_model_learns(synthetic, tmp_path):
    path, root = synthetic
    train = load_karpathy(path, root / "images", "train")
    val = load_karpathy(path, root / "images", "val")
    torch.manual_seed(0)
    trainer = Trainer(ModelConfig.tiny(), train, val, TrainConfig(epochs=8, batch_size=16, lr=3e-3, patience=99),
                      torch.device("cpu"), None, tmp_path / "ck", log_fn=lambda s: None)
    before = trainer.validate()["step1"]["rsum"]
    result = trainer.fit()
    hist = result["history"]
    assert hist[-1]["loss"] < hist[0]["loss"]
    # chance rSum for 24 images x 72 captions is about 130; the trained model must be well above it
    assert result["best_rsum"] > before + 60
    assert (tmp_path / "ck" / "model.safetensors").is_file()


def test_cli_train_then_evaluate_writes_json(synthetic, tmp_path, capsys):
    path, root = synthetic
    ck = tmp_path / "ck"
    assert main(["train", "--dataset", str(path), "--image-backbone", "tiny", "--epochs", "1",
                 "--batch-size", "16", "--out", str(ck), "--no-cache"]) == 0
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--dataset", str(path), "--split", "val", "--checkpoint", str(ck),
                 "--json", str(out), "--no-cache"]) == 0
    result = json.loads(out.read_text())
    keys = {"i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum"}
    assert set(result) == {"step1", "rerank", "patches"} and set(result["step1"]) == keys == set(result["rerank"])
    assert result["patches"] == "q4"  # Step 2 read the patches as the index stores them (the default)
    r = result["rerank"]
    assert r["rsum"] == pytest.approx(sum(v for k, v in r.items() if k != "rsum"))
    assert "rSum" in capsys.readouterr().out


def test_cli_fine_tunes_a_checkpoint_with_augmented_views_and_a_learnt_temperature(synthetic, tmp_path, capsys):
    """The bundled model's recipe through the CLI: start from a checkpoint, add flipped and cropped views of the
    training photos, learn the temperature; the run records it and starts where the checkpoint left off."""
    path, root = synthetic
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["--dataset", str(path), "--image-backbone", "tiny", "--batch-size", "16", "--no-cache"]
    assert main(["train", *common, "--epochs", "1", "--out", str(first)]) == 0
    start = json.loads((first / "train_log.json").read_text())["history"][0]["loss"]
    assert main(["train", *common, "--epochs", "1", "--out", str(second), "--init", str(first),
                 "--views", "flip,crop", "--learn-temperature", "--lr", "1e-4"]) == 0
    config = json.loads((second / "config.json").read_text())["training"]["config"]
    assert config["views"] == ["flip", "crop"] and config["learn_temperature"] and config["init"] == str(first)
    # it starts from the trained weights: its first epoch's loss is below that of the run it starts from
    assert json.loads((second / "train_log.json").read_text())["history"][0]["loss"] < start
    capsys.readouterr()
    for bad in (["--views", "flip,blur"], ["--views", "crop,crop"]):
        with pytest.raises(SystemExit) as done:
            main(["train", *common, "--out", str(tmp_path / "x"), *bad])
        err = capsys.readouterr().err.strip().splitlines()
        assert done.value.code == 2 and len(err) == 1 and "argument --views" in err[0]
    assert main(["train", *common, "--out", str(tmp_path / "x"), "--init", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--init" in err[0] and "not a checkpoint" in err[0]


def test_views_are_the_same_crop_each_time_and_differ_between_photos():
    from PIL import Image

    from sfe_desktop.data.features import view_of

    image = Image.new("RGB", (400, 300))
    assert view_of(image, "photo", 3) == (image, False) and view_of(image, "flip", 3) == (image, True)
    crops = [view_of(image, "crop", i)[0].size for i in range(8)]
    assert crops == [view_of(image, "crop", i)[0].size for i in range(8)] and len(set(crops)) > 1
    assert all(0.5 * 400 * 300 <= w * h <= 400 * 300 for w, h in crops)
    with pytest.raises(ValueError, match="blur"):
        view_of(image, "blur", 0)


def test_bad_dataset_gives_one_line_error(tmp_path, capsys):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    assert main(["evaluate", "--dataset", str(bad), "--checkpoint", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "not valid JSON" in err[0]
    csv = tmp_path / "pairs.csv"
    csv.write_text("image,caption\nmissing.jpg,a dog\n")
    with pytest.raises(Exception, match="missing.jpg"):
        from sfe_desktop.data.datasets import load_csv_pairs
        load_csv_pairs(csv)


def test_cache_adaptation_runs_frozen_blocks_as_at_inference():
    """Moving a cache up through frozen blocks must not use batch statistics or drop-connect, whatever mode the
    backbone is in (a backbone fresh from its constructor is in training mode)."""
    import numpy as np

    from sfe_desktop.model.backbones import ImageBackbone
    from sfe_desktop.train.loop import adapt_image_lower

    torch.manual_seed(0)
    backbone = ImageBackbone("lite0", 224, trainable_blocks=3, pretrained=False)
    cached = np.random.default_rng(0).standard_normal((6, 192, 7, 7)).astype(np.float16)
    low = backbone.split
    backbone.n_upper_blocks = 1  # the model fine-tunes one block: run two more frozen ones over the cache
    assert backbone.training
    first = adapt_image_lower(backbone, cached, low, batch_size=6)
    second = adapt_image_lower(backbone, cached[:2], low, batch_size=2)
    assert backbone.training  # the mode is restored
    np.testing.assert_array_equal(first[:2], second)


def test_gpo_starts_as_max_pooling_and_ignores_padding():
    """Generalised pooling: with its mix at 0 it is the max pooling it replaces (a fine-tuned model starts where it
    was); its position weights sum to 1 over each row's valid positions; padded positions never count."""
    from sfe_desktop.model.cues import AttentionPool

    torch.manual_seed(0)
    gpo, plain = AttentionPool(16, gpo=True), AttentionPool(16)
    plain.load_state_dict({k: v for k, v in gpo.state_dict().items() if not k.startswith("gpo.")})
    x = torch.randn(3, 7, 16)
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] * 2 + [0] * 5]).bool()
    assert torch.allclose(gpo(x, mask), plain(x, mask)) and torch.allclose(gpo(x), plain(x))
    with torch.no_grad():
        gpo.gpo.mix.fill_(1.0)
    assert not torch.allclose(gpo(x, mask), plain(x, mask), atol=1e-3)  # the learnt weighting now counts
    w = gpo.gpo.weights(mask.sum(1), 7)
    assert torch.allclose(w.sum(1), torch.ones(3)) and bool((w[~mask] == 0).all()) and bool((w[mask] > 0).all())
    noisy = x.masked_fill(~mask.unsqueeze(-1), 50.0)  # whatever sits in the padding
    assert torch.allclose(gpo(noisy, mask), gpo(x, mask))
    assert torch.allclose(gpo.gpo(x[1:2, :4]), gpo.gpo(x[1:2], mask[1:2]))  # a padded row pools as its valid part


def test_cli_fine_tunes_into_gpo_pooling_with_its_own_learning_rate(synthetic, tmp_path):
    """--pool gpo from a max-pooling checkpoint: the new pooling weights are the only fresh parameters, they learn
    at --new-lr (the rest at --lr), and the checkpoint written loads with them."""
    from sfe_desktop.model.checkpoint import load_checkpoint

    path, root = synthetic
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["--dataset", str(path), "--image-backbone", "tiny", "--batch-size", "16", "--no-cache"]
    assert main(["train", *common, "--epochs", "1", "--out", str(first)]) == 0
    train = load_karpathy(path, root / "images", "train")
    val = load_karpathy(path, root / "images", "val")
    cfg = TrainConfig(epochs=1, batch_size=16, lr=1e-5, new_lr=1e-2, init=str(first))
    trainer = Trainer(ModelConfig.tiny(pool="gpo"), train, val, cfg, torch.device("cpu"), None, second,
                      log_fn=lambda s: None)
    assert trainer.fresh and all(".gpo." in n for n in trainer.fresh)
    lr_of = {id(p): g["lr"] for g in trainer._optimizer().param_groups for p in g["params"]}
    params = dict(trainer.model.named_parameters())
    assert {lr_of[id(params[n])] for n in trainer.fresh} == {1e-2}
    assert lr_of[id(params["img_pool.out.weight"])] == 1e-5
    trainer.fit()
    model, meta, _ = load_checkpoint(second)
    assert model.cfg.pool == "gpo" and float(model.img_pool.gpo.mix.detach()) != 0.0  # it learnt to use the new pooling
    assert main(["train", *common, "--epochs", "1", "--out", str(tmp_path / "third"), "--init", str(first),
                 "--pool", "gpo", "--new-lr", "1e-2"]) == 0
    assert json.loads((tmp_path / "third" / "config.json").read_text())["model"]["pool"] == "gpo"
