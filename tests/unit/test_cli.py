"""The command line, called in-process with the tiny runtime."""
from __future__ import annotations

import csv
import json

import pytest
from collection_fixtures import data_dir, photos, runtime  # noqa: F401

from sfe_desktop import cli
from sfe_desktop.model.runtime import SFERuntime


@pytest.fixture(autouse=True)
def tiny(monkeypatch, runtime):
    monkeypatch.setattr(SFERuntime, "load", classmethod(lambda cls, checkpoint=None, device="auto": runtime))


def test_index_search_export_info(photos, tmp_path, capsys):
    (photos / "bad.jpg").write_bytes(b"nope")
    assert cli.main(["index", str(photos), "--report", "-q"]) == 0
    out = capsys.readouterr().out
    assert "8 indexed" in out and "1 skipped" in out and "skipped  bad.jpg: cannot decode" in out

    assert cli.main(["search", str(photos), "a red dog", "--top", "3", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert [h["rank"] for h in hits] == [1, 2, 3] and hits[0]["score"] >= hits[-1]["score"]
    assert all(h["path"].startswith(str(photos)) for h in hits)

    assert cli.main(["search", str(photos), "--image", str(photos / "p0.jpg"), "--top", "2", "--json"]) == 0
    assert all(h["caption"] for h in json.loads(capsys.readouterr().out))
    assert cli.main(["search", str(photos), "--similar", str(photos / "p0.jpg"), "--top", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2

    out_csv = tmp_path / "r.csv"
    assert cli.main(["export", str(photos), "a cat", "--csv", str(out_csv), "--top", "4"]) == 0
    assert "wrote 4 results" in capsys.readouterr().out
    rows = list(csv.DictReader(open(out_csv, encoding="utf-8", newline="")))
    assert len(rows) == 4 and rows[0]["direction"] == "text->image"

    assert cli.main(["explain", str(photos), "a red dog", "--rank", "2"]) == 0
    explained = json.loads(capsys.readouterr().out)
    assert explained["photo"] == hits[1]["path"] and explained["words"] == ["a", "red", "dog"]
    assert cli.main(["explain", str(photos), "--image", str(photos / "p0.jpg")]) == 0
    assert json.loads(capsys.readouterr().out)["photo"] == str(photos / "p0.jpg")

    assert cli.main(["info", str(photos), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["indexed"] == 8 and info["skipped"] == 1 and info["device"] == "cpu"


def test_errors_are_one_line_and_exit_2(photos, tmp_path, capsys):
    assert cli.main(["search", str(tmp_path / "missing"), "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert cli.main(["search", str(photos), "x", "--image", "y.jpg"]) == 2
    assert cli.main(["search", str(photos), "--similar", str(tmp_path / "nothing.jpg")]) == 2
    assert "error:" in capsys.readouterr().err


def test_no_arguments_opens_the_gui(monkeypatch):
    import sys
    import types

    seen = []
    fake = types.ModuleType("sfe_desktop.qt.app")  # the real one needs PySide6
    fake.main = lambda argv: seen.append(argv) or 0
    monkeypatch.setitem(sys.modules, "sfe_desktop.qt.app", fake)
    assert cli.main([]) == 0 and cli.main(["gui", "/photos"]) == 0
    assert seen == [[], ["/photos"]]


def test_train_options_left_out_take_the_dataclass_defaults():
    from sfe_desktop.cli.train import model_config
    from sfe_desktop.model.config import ModelConfig

    def parse(*extra):
        return cli.build_parser().parse_args(["train", "--dataset", "d.json", "--out", "o", *extra])

    assert model_config(parse()) == ModelConfig()
    assert model_config(parse("--image-backbone", "tiny")) == ModelConfig.tiny()
    lite0 = model_config(parse("--image-backbone", "lite0", "--text-trainable-layers", "0", "--no-step2"))
    assert lite0 == ModelConfig(image_backbone="lite0", image_size=224, text_trainable_layers=0, use_step2=False)
    assert model_config(parse("--baseline")).is_baseline


def test_explain_a_photo_and_a_text_without_an_index(photos, capsys):
    assert cli.main(["explain", str(photos / "p0.jpg"), "a red dog", "--json"]) == 0
    ex = json.loads(capsys.readouterr().out)
    h, w = ex["grid"]
    assert ex["photo"] == str(photos / "p0.jpg") and ex["text"] == "a red dog" and ex["words"] == ["a", "red", "dog"]
    assert len(ex["attention"]) == 3 and all(len(row) == h * w for row in ex["attention"])
    assert len(ex["heatmap"]) == h * w and abs(sum(ex["heatmap"]) - 1) < 1e-4
    assert 0 <= ex["confidence"] <= 1 and ex["classes"] and len(ex["word_classes"]) == 3
    assert {"image", "text", "names", "cooccurrence"} <= set(ex["concepts"]) and ex["neighbours"]["nodes"]
    assert not (photos / ".sfe-index").exists()  # nothing indexed


def test_explain_pairs_runs_every_line_and_reports_bad_ones_in_one_line(photos, tmp_path, capsys):
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    lines = [json.dumps({"photo": str(photos / "p0.jpg"), "text": "a red dog"}),
             json.dumps({"photo": str(tmp_path / "bad.jpg"), "text": "a cat"}),
             "not json",
             json.dumps({"photo": str(photos / "p1.jpg")}),
             json.dumps({"photo": str(photos / "p2.jpg"), "text": "a blue car"})]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert cli.main(["explain", "--pairs", str(pairs), "--json"]) == 1  # some lines failed
    captured = capsys.readouterr()
    out = [json.loads(line) for line in captured.out.splitlines()]
    assert [o.get("text") for o in out] == ["a red dog", None, None, None, "a blue car"]
    assert [o.get("line") for o in out] == [None, 2, 3, 4, None]
    errors = captured.err.strip().splitlines()
    assert len(errors) == 3 and all(e.startswith("error: line ") for e in errors) and "Traceback" not in captured.err
    assert "bad.jpg" in errors[0]
    assert cli.main(["explain", "--pairs", str(tmp_path / "missing.jsonl")]) == 2
    assert cli.main(["explain", str(photos / "p0.jpg")]) == 2  # a photo needs its text
