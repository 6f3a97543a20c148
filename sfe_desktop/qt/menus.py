"""Menus, shortcuts and the result context menu of :class:`~sfe_desktop.qt.main_window.QtMainWindow`."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMenu, QMessageBox

if TYPE_CHECKING:
    from .main_window import QtMainWindow


def _action(window, menu: QMenu, text: str, slot, shortcut=None, tip: str = "") -> QAction:
    action = QAction(text, window)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    if tip:
        action.setStatusTip(tip)
    action.triggered.connect(lambda *_: slot())
    menu.addAction(action)
    return action


def build_menus(w: "QtMainWindow") -> None:
    bar = w.menuBar()
    file_menu = bar.addMenu("&File")
    w.open_action = _action(w, file_menu, "&Open folder…", w.open_folder_dialog, QKeySequence.Open,
                            "Open and index a folder of photos")
    w.recent_menu = file_menu.addMenu("Open &recent")
    w._rebuild_recent_menu()
    file_menu.addSeparator()
    w.export_action = _action(w, file_menu, "&Export results…", w.export_results, "Ctrl+E",
                              "Save the current results as CSV")
    w.reindex_action = _action(w, file_menu, "Re-&index folder", lambda: w.session.start_indexing(),
                               tip="Index new or changed photos of the open folder")
    w.cancel_action = _action(w, file_menu, "&Cancel indexing", w.session.cancel_indexing)
    file_menu.addSeparator()
    w.settings_action = _action(w, file_menu, "&Settings…", w.open_settings, QKeySequence.Preferences)
    file_menu.addSeparator()
    _action(w, file_menu, "&Quit", w.close, QKeySequence.Quit)

    edit_menu = bar.addMenu("&Edit")
    w.find_action = _action(w, edit_menu, "&Find", lambda: (w.search_bar.setFocus(), w.search_bar.selectAll()),
                            QKeySequence.Find, "Focus the search box")
    w.clear_action = _action(w, edit_menu, "C&lear search", w.clear_search, "Esc")

    view_menu = bar.addMenu("&View")
    theme_menu = view_menu.addMenu("&Theme")
    group = QActionGroup(w)
    w.theme_actions = {}
    for key, label in (("system", "Follow &system"), ("light", "&Light"), ("dark", "&Dark")):
        action = _action(w, theme_menu, label, lambda k=key: w.set_theme(k))
        action.setCheckable(True)
        action.setData(key)
        group.addAction(action)
        w.theme_actions[key] = action
    w.toggle_dark_action = _action(w, view_menu, "Toggle &dark mode",
                                   lambda: w.set_theme("light" if w.dark else "dark"), "Ctrl+Shift+D")
    view_menu.addSeparator()
    _action(w, view_menu, "Show &explanation panel", lambda: w.explanation.setVisible(not w.explanation.isVisible()),
            "F9")

    help_menu = bar.addMenu("&Help")
    _action(w, help_menu, "&Keyboard shortcuts", lambda: QMessageBox.information(w, "Keyboard shortcuts", SHORTCUTS))
    _action(w, help_menu, "&About", lambda: QMessageBox.about(w, "About SFE Explorer", ABOUT))


def result_context_menu(w: "QtMainWindow", result: Any) -> QMenu:
    """Right-click menu of one result: search by it, copy it, show it in the file manager."""
    menu = QMenu(w)
    if result.path:
        _action(w, menu, "Find &captions", lambda: w.find_captions(result.path),
                tip="Captions that describe this photo")
        _action(w, menu, "Find &similar photos", lambda: w.find_similar(result.path))
        menu.addSeparator()
        _action(w, menu, "&Open photo", lambda: w.open_photo(result.path))
        _action(w, menu, "Copy &path", lambda: w.copy_text(result.path))
        _action(w, menu, "&Reveal in file manager", lambda: w.reveal(result.path))
    if result.caption:
        _action(w, menu, "Copy ca&ption", lambda: w.copy_text(result.caption))
        _action(w, menu, "&Search for this caption",
                lambda: (w.search_bar.setText(result.caption), w.search(result.caption)))
    return menu


SHORTCUTS = """Ctrl+O  open a folder
Ctrl+F  focus the search box
Enter   search (in the box) / open the photo (in the results)
Esc     clear the search
Arrows  move through the results
Ctrl+E  export results as CSV
Ctrl+Shift+D  toggle dark mode
F9      show or hide the explanation panel
Drop a folder to open it, or a photo to find captions for it."""

ABOUT = """<b>SFE Explorer</b><br>Search a local photo folder by meaning with a step-wise feature enhancement
(SFE) image-text retrieval model, and see why a photo matched."""
