"""Fixtures for the Qt tests: offscreen platform, a tiny random model, generated photo folders."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before any QApplication exists
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from qt_helpers import make_photos  # noqa: E402

@pytest.fixture(scope="session")
def tiny():
    """One tiny random-initialised runtime shared by the session (building it takes ~1 s)."""
    from sfe_desktop.model.runtime import tiny_runtime

    runtime = tiny_runtime()
    if getattr(runtime.model, "confidence", None) is not None:
        # a calibration of random weights says nothing (it finds most queries matching nothing); the tests about
        # match confidence give their results one (test_matches_and_history.py), the others run without
        runtime.model.confidence = None
    return runtime


@pytest.fixture(autouse=True)
def _isolated_data(tmp_path, monkeypatch):
    monkeypatch.setenv("SFE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    make_photos(folder, 12)
    return folder


@pytest.fixture
def make_window(qtbot, tmp_path, tiny):
    """Build a QtMainWindow with an INI settings file in tmp and the tiny runtime (or a given factory)."""
    from PySide6.QtCore import QSettings

    from sfe_desktop.qt.main_window import QtMainWindow

    def make(runtime_factory="tiny", wait_model: bool = True, **kwargs) -> QtMainWindow:
        factory = (lambda checkpoint, device: tiny) if runtime_factory == "tiny" else runtime_factory
        settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
        window = QtMainWindow(settings=settings, runtime_factory=factory, **kwargs)
        window.opened_urls = []
        window.url_opener = lambda url: window.opened_urls.append(url.toLocalFile()) or True
        qtbot.addWidget(window)
        window.show()
        if wait_model:
            with qtbot.waitSignal(window.session.runtime_loaded, timeout=30000):
                pass
        return window

    yield make
