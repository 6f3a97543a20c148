"""Nothing hangs on a FIFO or reads a device for ever: only regular files are opened, every read is bounded.
Each call runs under a time limit (guards.within), so a regression fails instead of hanging CI."""
from __future__ import annotations

import os
import shutil

import pytest
from collection_fixtures import cli_uses, data_dir, make_image, photos, runtime  # noqa: F401
from guards import fifo, within  # noqa: F401

from sfe_desktop import cli
from sfe_desktop.catalog import content_hash
from sfe_desktop.data.files import FileTooLargeError, NotRegularFileError, read_bytes
from sfe_desktop.errors import CheckpointError, DatasetError, SFEError
from sfe_desktop.model.checkpoint import load_checkpoint, save_checkpoint
from sfe_desktop.model.runtime import SFERuntime
from sfe_desktop.search import Collection


def test_regular_files_only_and_bounded(tmp_path, fifo):
    pipe = fifo(tmp_path / "pipe")
    for path in (pipe, tmp_path, "/dev/zero"):
        with pytest.raises(NotRegularFileError):
            within(read_bytes, path, 1024)
        with pytest.raises(NotRegularFileError):
            within(content_hash, path)
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(10_000)
    with pytest.raises(FileTooLargeError, match="too large"):
        read_bytes(big, 1000)
    assert read_bytes(big, 10_000) == bytes(10_000)


def test_fifo_and_devices_in_the_folder_are_skipped_as_what_they_are(photos, runtime, fifo):
    fifo(photos / "pipe.jpg")
    os.symlink("/dev/zero", photos / "zero.jpg")
    os.symlink("/dev/null", photos / "trip" / "null.png")

    def run():
        with Collection.open(photos, runtime, batch_size=4) as col:
            return col.index(), dict(col.skipped())

    summary, reasons = within(run)
    assert summary.indexed == 8 and summary.skipped == 3
    assert reasons == {"pipe.jpg": "a FIFO (named pipe), not a photo", "zero.jpg": "a character device, not a photo",
                       "trip/null.png": "a character device, not a photo"}


def test_sidecars_that_are_fifos_devices_or_binary_are_passed_over(photos, runtime, fifo):
    fifo(photos / "p0.txt")
    os.symlink("/dev/urandom", photos / "p1.jpg.txt")
    (photos / "p2.txt").write_bytes(bytes(range(256)) * 40)        # binary data
    (photos / "p3.txt").write_text("A dog on the beach\nsunset\n", encoding="utf-8")
    (photos / "p4.txt").write_bytes("Caf\xe9 au lait \u201cquoted\u201d".encode("cp1252"))  # Windows text

    def run():
        with Collection.open(photos, runtime, batch_size=4) as col:
            col.index()
            return sorted(col.catalog.captions())

    assert within(run) == [("A dog on the beach", "sidecar:p3.jpg"), ("Café au lait “quoted”", "sidecar:p4.jpg"),
                           ("sunset", "sidecar:p3.jpg")]


@pytest.fixture
def tiny_cli(monkeypatch, runtime):
    cli_uses(monkeypatch, runtime)


def test_searching_by_a_fifo_or_device_fails_in_one_line(photos, tiny_cli, fifo, capsys):
    pipe = fifo(photos.parent / "query.jpg")
    assert within(cli.main, ["index", str(photos), "-q"]) == 0
    capsys.readouterr()
    for flag, path in (("--similar", pipe), ("--image", pipe), ("--image", "/dev/zero"), ("--similar", photos)):
        assert within(cli.main, ["search", str(photos), flag, str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ")
        assert ("FIFO" if path == pipe else "device" if path == "/dev/zero" else "folder") in err[0]


@pytest.fixture
def checkpoint(tmp_path, runtime):
    folder = tmp_path / "ckpt"
    save_checkpoint(runtime.model, folder, dict(runtime.meta), runtime.corpus)
    return folder


def test_checkpoint_files_that_are_fifos_devices_or_huge_are_refused(checkpoint, fifo):
    assert load_checkpoint(checkpoint)[0] is not None
    for name in ("config.json", "corpus.json", "model.safetensors"):
        saved = checkpoint / (name + ".saved")
        os.rename(checkpoint / name, saved)
        for make, words in ((lambda p: fifo(p), "FIFO"), (lambda p: os.symlink("/dev/zero", p), "character device")):
            make(checkpoint / name)
            with pytest.raises(CheckpointError, match=f"{name}: cannot read \\(a {words}"):
                within(load_checkpoint, checkpoint)
            os.unlink(checkpoint / name)
        os.rename(saved, checkpoint / name)
    with open(checkpoint / "config.json", "r+b") as f:  # 70 MB (sparse): over the 64 MB a config may hold
        f.truncate(70 << 20)
    with pytest.raises(CheckpointError, match="config.json: cannot read \\(too large"):
        within(load_checkpoint, checkpoint)


def test_dataset_and_caption_files_that_are_fifos_are_refused(tmp_path, fifo, photos, runtime):
    from sfe_desktop.data.datasets import load_dataset

    (tmp_path / "images").mkdir()
    for name in ("data.json", "pairs.csv"):
        fifo(tmp_path / name)
        with pytest.raises(DatasetError, match="FIFO"):
            within(load_dataset, tmp_path / name, tmp_path / "images", "train")
    with Collection.open(photos, runtime) as col:
        with pytest.raises(SFEError, match="FIFO"):
            within(col.add_captions, fifo(tmp_path / "captions.txt"))
        with pytest.raises(SFEError, match="binary data"):
            col.add_captions(shutil.copy(photos / "p0.jpg", tmp_path / "photo.txt"))
