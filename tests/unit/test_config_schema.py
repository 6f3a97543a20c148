"""Checkpoint configs and command-line options are checked against bounds: every bad value is a one-line
`error:` naming the file and key, or the flag; never a traceback, a 62 GB allocation or a RecursionError."""
from __future__ import annotations

import dataclasses
import json

import pytest

from sfe_desktop.cli import main
from sfe_desktop.errors import CheckpointError
from sfe_desktop.model.checkpoint import CONFIG_FILE, load_checkpoint, save_checkpoint
from sfe_desktop.model.config import BOUNDS, ModelConfig, bounds
from sfe_desktop.model.runtime import tiny_runtime


def test_every_config_field_has_bounds_and_the_defaults_are_inside_them():
    assert {f.name for f in dataclasses.fields(ModelConfig)} == set(BOUNDS)
    ModelConfig().validate()
    ModelConfig.tiny().validate()


def test_a_field_without_bounds_is_refused(monkeypatch):
    monkeypatch.delitem(BOUNDS, "dim")
    with pytest.raises(TypeError, match="dim"):
        bounds()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ck") / "ck"
    rt = tiny_runtime(0)
    save_checkpoint(rt.model, folder, dict(rt.meta), rt.corpus)
    return folder


@pytest.fixture
def edited(checkpoint, tmp_path):
    """A copy of the checkpoint whose config.json is changed by ``edit(meta)``."""
    import shutil

    def make(edit):
        folder = tmp_path / "edited"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(checkpoint, folder)
        meta = json.loads((folder / CONFIG_FILE).read_text())
        edit(meta)
        (folder / CONFIG_FILE).write_text(json.dumps(meta))
        return folder
    return make


def _set(key, value):
    def edit(meta):
        meta["model"][key] = value
    return edit


@pytest.mark.parametrize("key, value", [
    ("dim", -1), ("dim", "256"), ("dim", 256.5), ("dim", 10_000_000), ("dim", True),
    ("image_size", 0), ("image_size", 1_000_000), ("n_concepts", 100_000_000), ("max_length", -5),
    ("image_backbone", "resnet9000"), ("text_backbone", None), ("neighbours_k", 1_000_000_000),
    ("use_patch", "yes"), ("rerank_k", -1), ("extra", {"a": [[[[[[[[[[1]]]]]]]]]]}), ("surprise", 1),
])
def test_out_of_range_or_mistyped_config_values_are_one_line_errors(edited, key, value):
    folder = edited(_set(key, value))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(folder)
    message = str(err.value)
    assert "\n" not in message and str(folder / CONFIG_FILE) in message
    assert (f"unknown key '{key}'" in message) if key == "surprise" else (f"model.{key}: must be" in message)


@pytest.mark.parametrize("edit, words", [
    (lambda m: m.update(version=99), "layout version 99 is not supported (this build reads versions 1 to"),
    (lambda m: m.update(version="2"), 'layout version "2" is not supported'),
    (lambda m: m.update(model="tiny"), "no 'model' section"),
    (lambda m: m.update(concepts="dog"), "concepts: must be a list"),
    (lambda m: m.update(concepts=[1, 2]), "concepts.0: must be a non-empty text"),
    (lambda m: m["model"].update(deep=json.loads("[" * 40 + "]" * 40)), "nested too deeply"),
])
def test_bad_checkpoint_sections_are_one_line_errors(edited, edit, words):
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(edited(edit))
    assert "\n" not in str(err.value) and words in str(err.value)


def test_deeply_nested_config_is_refused_before_the_recursion_limit(checkpoint, tmp_path):
    import shutil

    folder = tmp_path / "deep"
    shutil.copytree(checkpoint, folder)
    (folder / CONFIG_FILE).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError, match="nested too deeply"):
        load_checkpoint(folder)


# -- command-line options ----------------------------------------------------------------------------------


def _one_line_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize("argv, flag", [
    (["train", "--dataset", "d.json", "--epochs", "0"], "--epochs"),
    (["train", "--dataset", "d.json", "--batch-size", "0"], "--batch-size"),
    (["train", "--dataset", "d.json", "--dim", "0"], "--dim"),
    (["train", "--dataset", "d.json", "--concepts", "0"], "--concepts"),
    (["train", "--dataset", "d.json", "--lr", "0"], "--lr"),
    (["train", "--dataset", "d.json", "--lr", "nan"], "--lr"),
    (["train", "--dataset", "d.json", "--image-size", "1000000"], "--image-size"),
    (["search", "DIR", "dog", "--top", "0"], "--top"),
    (["search", "DIR", "dog", "--top", "-5"], "--top"),
    (["search", "DIR", "dog", "--top", "many"], "--top"),
    (["search", "DIR", "dog", "--rerank-k", "-1"], "--rerank-k"),
    (["export", "DIR", "dog", "--csv", "x.csv", "--top", "0"], "--top"),
    (["explain", "DIR", "dog", "--rank", "0"], "--rank"),
    (["index", "DIR", "--batch-size", "0"], "--batch-size"),
])
def test_out_of_range_options_are_one_line_errors_naming_the_flag(capsys, argv, flag):
    line = _one_line_error(capsys, argv)
    assert f"argument {flag}" in line and "must be" in line


def test_train_refuses_an_out_that_is_a_file_and_too_few_images(tmp_path, capsys):
    from synthetic import draw

    (tmp_path / "images").mkdir()
    entries = []
    for i, colour in enumerate(("red", "green", "blue", "yellow", "red")):
        draw(colour, "circle", "white").save(tmp_path / "images" / f"{i}.png")
        entries.append({"filename": f"{i}.png", "split": "train" if i < 4 else "val",
                        "sentences": [{"raw": f"a {colour} circle"}]})
    dataset = tmp_path / "d.json"
    dataset.write_text(json.dumps({"images": entries}))
    (tmp_path / "file").write_text("x")
    args = ["train", "--dataset", str(dataset), "--image-backbone", "tiny", "--epochs", "1", "--no-cache"]
    assert main([*args, "--out", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --out") and "is a file" in err[0]
    assert main([*args, "--out", str(tmp_path / "file" / "ck")]) == 2    # refused before training, not after
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --out: {tmp_path / 'file'} is not a folder"]
    assert main(["evaluate", "--dataset", str(dataset), "--json", str(tmp_path / "no" / "e.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --json: {tmp_path / 'no'} does not exist"]
    assert main([*args, "--out", str(tmp_path / "ck")]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # a line of what is trained on, then the error
    errors = [line for line in err if line.startswith("error: ")]
    assert errors == [err[-1]] and "nothing to train: 4 training images" in err[-1] and "8" in err[-1]
    assert "Traceback" not in "\n".join(err)
