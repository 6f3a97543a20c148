"""Every error a user can cause is a clear message in the window, never a traceback or a hang."""
from __future__ import annotations

from qt_helpers import make_photos, open_and_index, run_search

from sfe_desktop.model.runtime import SFERuntime


def test_unreadable_folder(make_window, tmp_path):
    window = make_window()
    assert not window.open_folder(str(tmp_path / "missing"))
    assert "does not exist" in window.message_bar.text()
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    assert not window.open_folder(str(a_file))
    assert "is not a folder" in window.message_bar.text()
    assert window.message_bar.level == "error"
    assert window.session.folder is None


def test_corrupt_checkpoint(qtbot, make_window, tmp_path):
    bad = tmp_path / "bad-checkpoint"
    bad.mkdir()
    (bad / "config.json").write_text("{ truncated")
    (bad / "model.safetensors").write_bytes(b"\x00garbage")
    window = make_window(runtime_factory=lambda checkpoint, device: SFERuntime.load(checkpoint, device),
                         wait_model=False, checkpoint=str(bad), device="cpu")
    with qtbot.waitSignal(window.session.runtime_failed, timeout=30000):
        pass
    text = window.message_bar.text()
    assert text.startswith("Could not load the model:") and "config.json" in text and "Settings" in text
    assert "Traceback" not in text
    assert window.model_label.text() == "Model: not loaded"
    window.search("a dog")  # still responsive, and says why nothing happens
    assert "Open a photo folder" in window.message_bar.text()


def test_query_without_index_and_empty_export(make_window, tmp_path):
    window = make_window()
    window.search_bar.setText("a red car")
    window.search()
    assert "Open a photo folder before searching" in window.message_bar.text()
    assert window.model.rowCount() == 0
    assert not window.export_results(str(tmp_path / "x.csv"))
    assert "Nothing to export" in window.message_bar.text()
    window.handle_drop(str(tmp_path))  # an empty folder dropped: opened
    window.handle_drop(__file__)       # neither a folder nor a photo
    assert "neither" in window.message_bar.text()


def test_empty_folder_and_no_results(qtbot, make_window, tmp_path):
    window = make_window()
    empty = tmp_path / "empty"
    empty.mkdir()
    summary = open_and_index(qtbot, window, empty)
    assert summary.total == 0
    assert "No photos were found" in window.message_bar.text()
    results = run_search(qtbot, window, lambda: window.search("a red dog"))
    assert results == []
    assert "No results" in window.message_bar.text() and window.results_label.text() == "Nothing for “a red dog”."


def test_unreadable_photos_are_reported(qtbot, make_window, tmp_path):
    folder = tmp_path / "mixed"
    make_photos(folder, 4)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "empty.png").write_bytes(b"")
    window = make_window()
    summary = open_and_index(qtbot, window, folder)
    assert summary.skipped == 2
    assert window.message_bar.text() == ("2 of 6 files could not be read and were skipped: broken.jpg (cannot "
                                         "decode), empty.png (empty file).")
    assert window.message_bar.level == "warning"


def test_export_to_unwritable_path(qtbot, make_window, photos, tmp_path):
    window = make_window()
    open_and_index(qtbot, window, photos)
    run_search(qtbot, window, lambda: window.search("a blue boat"))
    (tmp_path / "taken.csv").mkdir()  # a folder where the file should go
    assert not window.export_results(str(tmp_path / "taken.csv"))
    assert window.message_bar.text().startswith("Could not export to")


def test_a_read_only_index_is_searched_without_indexing(qtbot, make_window, photos, monkeypatch):
    """A read-only photo folder whose index is complete: the window searches it and does not start a run."""
    import sfe_desktop.settings as settings

    window = make_window()
    open_and_index(qtbot, window, photos)
    monkeypatch.setattr(settings, "writable", lambda d: False)
    started = []
    window.session.index_progress.connect(started.append)
    with qtbot.waitSignal(window.session.collection_opened, timeout=60000):
        assert window.open_folder(str(photos))
    assert window.session.collection.read_only
    assert window.message_bar.level == "info" and "read-only" in window.message_bar.text()
    assert not window.progress.isVisible() and window.session._index_worker is None
    results = run_search(qtbot, window, lambda: window.session.search_text("a red photo", 10))
    assert results and not started
