"""Stale or wrong data is never served silently, and the smaller things of issue 12: 16-bit and float greyscale,
permission-denied files retried, the feature cache keyed by content, datasets that leave the images folder or are
malformed, EXIF dates, escape sequences in names, CSV and faiss files that follow the umask, export into a missing
folder, panorama thumbnails, message wordings. Fixtures are generated."""
from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
from collection_fixtures import cli_uses, data_dir, make_image, photos, runtime  # noqa: F401
from PIL import Image

from sfe_desktop import cli
from sfe_desktop.data.images import load_image
from sfe_desktop.errors import DatasetError, IndexStateError
from sfe_desktop.model.runtime import SFERuntime, tiny_runtime
from sfe_desktop.search import Collection


# -- pixels ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode, value, fmt, expected", [
    ("I;16", 32768, "PNG", 128), ("I;16", 65535, "PNG", 255), ("I;16", 8000, "TIFF", 31),
    ("F", 0.5, "TIFF", 128), ("F", 1.0, "TIFF", 255), ("I", 1000, "TIFF", 4),
])
def test_wide_greyscale_is_scaled_not_clipped(tmp_path, mode, value, fmt, expected):
    dtype = {"I;16": np.uint16, "F": np.float32, "I": np.int32}[mode]
    pixels = np.full((20, 30), value, dtype=dtype)
    pixels[0, 0] = 0                                          # a dark corner: the rest is not stretched to white
    path = tmp_path / f"grey.{fmt.lower()}"
    Image.fromarray(pixels, mode if mode != "I;16" else None).save(path, fmt)
    assert Image.open(path).mode in ({"I;16", "I"} if mode != "F" else {"F"})
    rgb = np.asarray(load_image(path))
    assert rgb.shape == (20, 30, 3) and abs(int(rgb[10, 10, 0]) - expected) <= 1 and rgb[0, 0, 0] == 0


def test_a_file_that_is_no_image_says_so_by_name(tmp_path):
    from sfe_desktop.errors import ImageReadError

    (tmp_path / "notes.jpg").write_text("not a picture")
    with pytest.raises(ImageReadError) as err:
        load_image(tmp_path / "notes.jpg")
    assert str(err.value) == "notes.jpg: cannot decode (not an image format this app reads)"


def test_a_panorama_thumbnail_keeps_its_middle_readable(tmp_path):
    from sfe_desktop.index.thumbs import thumbnail

    wide = Image.new("RGB", (20000, 100), "red")
    assert thumbnail(wide, 256).size == (256, 64)
    assert thumbnail(wide.rotate(90, expand=True), 256).size == (64, 256)
    assert thumbnail(Image.new("RGB", (640, 480)), 256).size == (256, 192)


# -- the folder ------------------------------------------------------------------------------------------------
def test_a_permission_denied_file_is_retried_without_changing(photos, runtime, monkeypatch):
    from sfe_desktop.search import indexer

    real_hash = indexer.content_hash
    denied = {str(photos / "p3.jpg")}

    def content_hash(path, size=None):
        if os.fsdecode(path) in denied:
            raise PermissionError(13, "Permission denied")
        return real_hash(path, size)

    monkeypatch.setattr(indexer, "content_hash", content_hash)
    with Collection.open(photos, runtime) as col:
        col.index()
        assert dict(col.skipped()) == {"p3.jpg": "permission denied"}
    denied.clear()                                            # chmod 644: same size and mtime
    with Collection.open(photos, runtime) as col:
        summary = col.index()
        assert summary.indexed == 1 and col.skipped() == [] and col.info()["indexed"] == 8


def test_names_with_escape_sequences_are_printed_escaped(photos, runtime, monkeypatch, capsys):
    cli_uses(monkeypatch, runtime)
    evil = "red\x1b[2J\x1b]0;owned\x07\u202e.jpg"
    (photos / evil).write_bytes(b"")                          # skipped (empty), so --report names it
    make_image(photos / ("dog\x1b[31m.jpg"), 77)
    assert cli.main(["index", str(photos), "--report", "-q"]) == 0
    assert cli.main(["search", str(photos), "a dog", "--top", "20"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "skipped  red\\x1b[2J\\x1b]0;owned\\x07\\u202e.jpg: empty file" in out
    assert "dog\\x1b[31m.jpg" in out


def test_export_never_creates_folders_and_files_follow_the_umask(photos, runtime, monkeypatch, capsys, tmp_path):
    cli_uses(monkeypatch, runtime)
    old = os.umask(0o022)
    try:
        assert cli.main(["index", str(photos), "-q"]) == 0
        missing = tmp_path / "no" / "such" / "out.csv"
        assert cli.main(["export", str(photos), "a dog", "--csv", str(missing)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "does not exist" in err[0] and not (tmp_path / "no").exists()
        assert cli.main(["export", str(photos), "a dog", "--csv", str(tmp_path / "out.csv")]) == 0
        os.umask(0o027)
        (photos / ".sfe-index" / "vectors.faiss").unlink()
        make_image(photos / "new.jpg", 90)
        assert cli.main(["index", str(photos), "-q"]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.csv").stat().st_mode) == 0o644
    assert stat.S_IMODE((photos / ".sfe-index" / "vectors.faiss").stat().st_mode) == 0o640


def test_the_stale_index_message_names_the_flag(photos, runtime):
    with Collection.open(photos, runtime) as col:
        col.index()
    with Collection.open(photos, tiny_runtime(1)) as col:
        with pytest.raises(IndexStateError) as err:
            col.index()
    assert "--reencode" in str(err.value) and "reencode=True" not in str(err.value)


# -- EXIF ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, iso", [
    ("2021:07:01 10:11:12", "2021-07-01T10:11:12"), ("2021-07-01T10:11", "2021-07-01T10:11:00"),
    ("2021:07:01", "2021-07-01"), ("2020-13-45T25:61:61", None), ("2021:02:30 10:00:00", None),
    ("0000:00:00 00:00:00", None), ("2021:07:01 10:11:12\x1b[31m", None), ("=cmd|' /C calc'!A0", None),
    ("    ", None), (b"2021:07:01 10:11:12\x00", "2021-07-01T10:11:12"), (12345, None),
])
def test_exif_dates_are_validated(raw, iso):
    from sfe_desktop.catalog.metadata import exif_date

    assert exif_date(raw) == iso


def test_an_invalid_exif_date_is_left_out_of_the_catalog(tmp_path):
    from sfe_desktop.catalog.metadata import probe

    make_image(tmp_path / "bad.jpg", 1, exif_date="2020-13-45T25:61:61")
    make_image(tmp_path / "good.jpg", 1, exif_date="2019:05:06 07:08:09")
    assert probe(str(tmp_path / "bad.jpg"))[2] is None
    assert probe(str(tmp_path / "good.jpg")) == (64, 48, "2019-05-06T07:08:09")


# -- datasets --------------------------------------------------------------------------------------------------
@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    make_image(folder / "a.png", 1, fmt="PNG")
    return folder


def _karpathy(tmp_path, entries) -> str:
    path = tmp_path / "data.json"
    path.write_text(json.dumps({"images": entries}))
    return str(path)


def _entry(name, **more):
    return {"filename": name, "split": "train", "sentences": [{"raw": "a dog"}], **more}


@pytest.mark.parametrize("entries, words", [
    ([_entry("../../../etc/passwd")], "lies outside the images folder"),
    ([_entry("/etc/passwd")], "lies outside the images folder"),
    ([_entry("a.png", filepath="../..")], "lies outside the images folder"),
    ([_entry("C:\\Windows\\win.ini")], "lies outside the images folder"),
    ([_entry(None)], "the image name must be a non-empty text (got null)"),
    (["a.png"], 'image entry 0 is not an object'),
    ([_entry("a.png", sentences="a dog")], "'sentences' must be a list"),
    ([_entry("a.png", sentences=[{"raw": ["nested"]}])], "a caption must be a text"),
])
def test_bad_dataset_entries_are_refused_in_one_line(tmp_path, images, entries, words):
    from sfe_desktop.data.datasets import load_karpathy

    with pytest.raises(DatasetError) as err:
        load_karpathy(_karpathy(tmp_path, entries), images, "train")
    assert words in str(err.value) and "\n" not in str(err.value)


def test_bad_dataset_files_are_refused_in_one_line(tmp_path, images):
    from sfe_desktop.data.datasets import load_csv_pairs, load_dataset, load_karpathy

    for content, words in (("image,caption\n../secret.png,a dog\n", "lies outside the images folder"),
                           ("image,caption\n/etc/passwd,a dog\n", "lies outside the images folder"),
                           ("image,caption\na.png,\"" + "x" * 200_000 + "\"\n", "line")):
        (tmp_path / "pairs.csv").write_text(content)
        with pytest.raises(DatasetError, match=words) as err:
            load_csv_pairs(tmp_path / "pairs.csv", images)
        assert "\n" not in str(err.value)
    with pytest.raises(DatasetError, match="cannot read") as err:
        load_dataset(tmp_path / "images", images, "train")            # a folder named as the dataset
    (tmp_path / "deep.json").write_text("[" * 50_000 + "]" * 50_000)
    with pytest.raises(DatasetError, match="nested too deeply"):
        load_karpathy(tmp_path / "deep.json", images, "train")


# -- the training and evaluation feature cache -----------------------------------------------------------------
def test_the_feature_cache_follows_the_photos_content_not_their_names(tmp_path):
    from sfe_desktop.data.features import image_lower_features

    backbone = tiny_runtime(0).model.image
    folder = tmp_path / "val"
    folder.mkdir()
    paths = [folder / f"{i}.png" for i in range(3)]
    for i, p in enumerate(paths):
        make_image(p, i, fmt="PNG")
    cache = tmp_path / "cache"
    first = np.array(image_lower_features(backbone, paths, cache))
    assert np.array_equal(np.array(image_lower_features(backbone, paths, cache)), first)  # reused
    make_image(paths[1], 99, fmt="PNG")                       # replaced under the same name
    second = np.array(image_lower_features(backbone, paths, cache))
    assert np.array_equal(second, np.array(image_lower_features(backbone, paths, None)))
    assert not np.array_equal(second[1], first[1]) and np.array_equal(second[0], first[0])
    other = tmp_path / "other" / "val"                        # another folder of the same layout
    other.mkdir(parents=True)
    for i in range(3):
        make_image(other / f"{i}.png", 50 + i, fmt="PNG")
    moved = np.array(image_lower_features(backbone, [other / f"{i}.png" for i in range(3)], cache))
    assert not np.array_equal(moved, second)
    retrained = tiny_runtime(1).model.image                   # other lower-layer weights
    assert not np.array_equal(np.array(image_lower_features(retrained, paths, cache)), second)
