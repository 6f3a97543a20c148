"""What the app checks before Qt starts: the X11 plugin's libraries (qt/startup.py imports no Qt)."""
from __future__ import annotations

import shutil

import pytest

from sfe_desktop.qt import startup


def test_install_hint_names_libraries_and_both_families_of_packages():
    text = startup.install_hint(["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-cursor.so.0"])
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1, libxcb-cursor.so.0" in text
    assert "apt-get install libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 (Debian/Ubuntu)" in text
    assert "dnf install xcb-util-wm xcb-util-keysyms xcb-util-cursor (Fedora)" in text
    assert "\n" not in text
    assert "apt-file search" in startup.install_hint(["libweird.so.9"])


def test_which_platform_qt_loads():
    assert startup.uses_xcb({}) and startup.uses_xcb({"QT_QPA_PLATFORM": "xcb"})
    assert not startup.uses_xcb({"QT_QPA_PLATFORM": "offscreen"})
    assert startup.uses_xcb({"QT_QPA_PLATFORM": "xcb;wayland"})
    assert not startup.uses_xcb({"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"})
    assert startup.platform_problem({"QT_QPA_PLATFORM": "offscreen"}) is None


@pytest.mark.skipif(startup.qt_plugin() is None or shutil.which("ldd") is None, reason="needs PySide6 and ldd")
def test_missing_libraries_of_a_real_plugin(tmp_path):
    """A copy of the xcb plugin away from PySide6's Qt libraries: ldd finds them missing, and the one line says
    what to do."""
    plugin = tmp_path / "libqxcb.so"
    shutil.copy(startup.qt_plugin(), plugin)
    missing = startup.missing_libraries(plugin)
    assert "libQt6XcbQpa.so.6" in missing and "libQt6Gui.so.6" in missing
    problem = startup.platform_problem({"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":0"}, plugin=plugin)
    assert problem.startswith("Qt's X11 platform plugin (xcb) needs libQt6") and "reinstall" in problem
    installed = startup.missing_libraries(startup.qt_plugin())
    assert all(m.startswith("libxcb") or m.startswith("libxkb") or m in startup.PACKAGES for m in installed)


def test_no_display_is_one_line(monkeypatch):
    monkeypatch.setattr(startup, "missing_libraries", lambda plugin: [])
    monkeypatch.setattr(startup, "loadable", lambda soname: True)
    if startup.qt_plugin() is None:
        pytest.skip("needs PySide6")
    assert "DISPLAY is not set" in startup.platform_problem({"QT_QPA_PLATFORM": "xcb"})
    assert startup.platform_problem({"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":5"}) is None
