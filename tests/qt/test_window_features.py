"""Settings, themes, shortcuts, recent folders, start-up and closing during indexing."""
from __future__ import annotations

import time

from PySide6.QtGui import QKeySequence, QPalette
from PySide6.QtWidgets import QApplication
from qt_helpers import make_photos, open_and_index

from sfe_desktop.qt.widgets.settings_dialog import AppSettings, QtSettingsDialog


def test_window_shows_before_model_loads(qtbot, make_window, tiny, photos):
    def slow_factory(checkpoint, device):
        time.sleep(1.0)
        return tiny

    start = time.perf_counter()
    window = make_window(runtime_factory=slow_factory, wait_model=False)
    assert window.isVisible() and time.perf_counter() - start < 1.0  # the model loads in the background
    assert window.model_label.text() == "Model: loading…"
    window.open_folder(str(photos))  # picked while the model loads: indexed once it is ready
    assert window.progress.isVisible()
    with qtbot.waitSignal(window.session.index_finished, timeout=30000) as blocker:
        pass
    assert blocker.args[0].indexed == 12


def test_shortcuts(make_window):
    window = make_window()
    assert window.actions.open.shortcut() == QKeySequence(QKeySequence.Open)
    assert window.actions.find.shortcut() == QKeySequence(QKeySequence.Find)
    assert window.actions.export.shortcut().toString() == "Ctrl+E"
    assert window.actions.clear.shortcut().toString() == "Esc"
    window.search_bar.setText("something")
    window.actions.find.trigger()
    assert window.search_bar.selectedText() == "something"
    window.actions.clear.trigger()
    assert window.search_bar.text() == ""


def test_settings_dialog(qtbot, make_window, monkeypatch):
    window = make_window()
    dialog = QtSettingsDialog(AppSettings(device="cuda", top_k=7), cuda_available=False)
    qtbot.addWidget(dialog)
    cuda = dialog.device.model().item(1)
    assert not cuda.isEnabled() and "not available" in dialog.device.itemText(1)
    assert dialog.device.currentData() == "auto"  # saved CUDA falls back when there is no GPU
    assert dialog.values().top_k == 7 and dialog.values().checkpoint is None
    dialog.use_file.setChecked(True)
    dialog.checkpoint_path.setText("/some/checkpoint")
    assert dialog.values().checkpoint == "/some/checkpoint"

    enabled = QtSettingsDialog(AppSettings(), cuda_available=True)
    qtbot.addWidget(enabled)
    assert enabled.device.model().item(1).isEnabled()

    window.apply_settings(AppSettings(device=window.prefs.device, checkpoint=None, top_k=3))
    assert AppSettings.load(window.qsettings).top_k == 3
    with qtbot.waitSignal(window.session.runtime_loaded, timeout=30000):
        window.apply_settings(AppSettings(device="cpu", checkpoint=None, top_k=3))  # reloads the model
    assert window.device_label.text() == "Device: CPU"


def test_themes(make_window):
    window = make_window()
    window.set_theme("dark")
    assert QApplication.palette().color(QPalette.Window).lightness() < 80
    assert window.explanation.attention.plot.theme["bg"] == "#2b2b2b"
    window.actions.toggle_dark.trigger()
    assert window.theme == "light"
    assert QApplication.palette().color(QPalette.Window).lightness() > 180
    assert window.qsettings.value("view/theme") == "light"


def test_recent_folders(qtbot, make_window, photos, tmp_path):
    window = make_window()
    open_and_index(qtbot, window, photos)
    other = tmp_path / "other"
    make_photos(other, 2)
    open_and_index(qtbot, window, other)
    assert window.recent_folders()[:2] == [str(other), str(photos)]
    assert [a.text() for a in window.actions.recent.actions()][:2] == [str(other), str(photos)]


def test_close_during_indexing_keeps_progress(qtbot, make_window, tmp_path, tiny):
    folder = tmp_path / "many"
    make_photos(folder, 150, size=(64, 48))
    window = make_window()
    with qtbot.waitSignal(window.session.index_progress, timeout=30000):
        window.open_folder(str(folder))
    assert window.session.indexing
    start = time.perf_counter()
    window.close()
    assert time.perf_counter() - start < 10
    assert window.session.collection is None and not window.session.busy()

    from sfe_desktop.search import Collection

    coll = Collection.open(folder, tiny)
    try:
        assert coll.info()["indexed"] > 0  # what was indexed before closing is kept
    finally:
        coll.close()
