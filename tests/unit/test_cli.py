"""The command line, called in-process with the tiny runtime."""
from __future__ import annotations

import csv
import json

import pytest
from collection_fixtures import cli_uses, data_dir, photos, runtime  # noqa: F401
from guards import session_processes

from sfe_desktop import cli
from sfe_desktop.model.runtime import SFERuntime


@pytest.fixture(autouse=True)
def tiny(monkeypatch, runtime):
    cli_uses(monkeypatch, runtime)


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


def test_a_folder_or_gui_options_first_open_the_gui(monkeypatch, photos):
    import sys
    import types

    seen = []
    fake = types.ModuleType("sfe_desktop.qt.app")
    fake.main = lambda argv: seen.append(argv) or 0
    monkeypatch.setitem(sys.modules, "sfe_desktop.qt.app", fake)
    assert cli.main([str(photos)]) == 0
    assert cli.main(["-v", str(photos), "--search", "a dog"]) == 0
    assert cli.main(["--device", "cpu"]) == 0
    assert seen == [[str(photos)], [str(photos), "--search", "a dog"], ["--device", "cpu"]]


def test_version_and_unknown_words(capsys):
    import sfe_desktop

    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"sfe-desktop {sfe_desktop.__version__}"
    assert cli.main(["serch", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: serch is neither a command nor an existing folder") and "sfe-desktop search" in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("command", [["search", "{d}", "a dog"], ["search", "{d}", "--similar", "{p}"],
                                     ["export", "{d}", "a dog", "--csv", "{out}"], ["info", "{d}"],
                                     ["explain", "{d}", "a dog"]])
def test_a_folder_never_indexed_is_an_error_and_stays_untouched(photos, tmp_path, capsys, command):
    out = tmp_path / "out.csv"
    before = sorted(p.name for p in photos.rglob("*"))
    args = [a.format(d=photos, p=photos / "p0.jpg", out=out) for a in command]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not indexed yet" in err[0] and f"sfe-desktop index {photos}" in err[0]
    assert sorted(p.name for p in photos.rglob("*")) == before and not out.exists()  # nothing created
    assert not (tmp_path / "data").exists()


def test_an_index_of_another_checkpoint_is_said_before_the_model_loads(photos, monkeypatch, capsys):
    assert cli.main(["index", str(photos), "-q"]) == 0
    monkeypatch.setattr("sfe_desktop.model.layout.checkpoint_id", lambda directory: "0123456789abcdef")
    loaded = []
    monkeypatch.setattr(SFERuntime, "load", classmethod(lambda cls, *a, **k: loaded.append(a) or 1 / 0))
    capsys.readouterr()
    for args in (["search", str(photos), "a dog"], ["search", str(photos), "--similar", str(photos / "p0.jpg")],
                 ["export", str(photos), "a dog", "--csv", str(photos / "x.csv")], ["explain", str(photos), "a dog"]):
        assert cli.main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "was built with checkpoint tiny-0, not 0123456789ab" in err[0], err
        assert "--reencode" in err[0]
    assert loaded == [] and not (photos / "x.csv").exists()


def run_cli(code: str, *args, timeout=120, **kwargs):
    """Run the CLI in a fresh interpreter (what a user's shell does), the tiny model standing in for the real one."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_argument_errors_come_before_torch_loads(tmp_path):
    code = ("import sys\nfrom sfe_desktop.cli import main\n"
            "status = main(sys.argv[1:])\n"
            "print('torch' in sys.modules, 'PySide6' in sys.modules, status)\n")
    cases = [["serch", "x"], ["search", str(tmp_path / "missing"), "x"], ["index", str(tmp_path / "missing")],
             ["info", str(tmp_path)], [str(tmp_path / "missing")], ["gui", str(tmp_path / "missing")],
             ["gui", str(tmp_path), "--device", "gpu"], ["search"]]
    for case in cases:
        proc = run_cli(code, *case)
        out, err = proc.communicate(timeout=120)
        assert "error" in err, (case, err)
        if out:  # argparse errors exit before the print
            assert out.split()[:2] == ["False", "False"], (case, out)
        else:
            assert proc.returncode == 2, (case, proc.returncode)
        assert "Traceback" not in err


def test_sigterm_stops_an_index_run_keeps_its_work_and_leaves_no_process(tmp_path):
    import os
    import signal
    import time

    from PIL import Image

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(400):
        Image.new("RGB", (64, 48), (i % 255, (3 * i) % 255, 90)).save(folder / f"{i:03d}.jpg")
    code = ("import sys\nfrom sfe_desktop.model.runtime import SFERuntime, tiny_runtime\n"
            "SFERuntime.load = classmethod(lambda cls, checkpoint=None, device='auto': tiny_runtime())\n"
            "from sfe_desktop.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    proc = run_cli(code, "index", str(folder), "--batch-size", "2", start_new_session=True)
    import sqlite3

    catalog = folder / ".sfe-index" / "catalog.sqlite"

    def indexed() -> int:
        try:
            with sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=5) as db:
                return db.execute("SELECT COUNT(*) FROM files WHERE status = 'ok'").fetchone()[0]
        except sqlite3.Error:  # not created yet, or its tables not yet
            return 0

    deadline = time.monotonic() + 120
    while indexed() == 0 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)  # signal once a batch is stored, however loaded the machine
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, err[-2000:])
    assert "interrupted: what was indexed is kept" in err
    assert session_processes(proc.pid) == []  # the session it led: anything it started
    assert 0 < indexed() < 400

