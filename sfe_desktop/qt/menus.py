"""Menus, shortcuts and the result context menu of the main window.

:func:`build_menus` takes what each entry does (:class:`MenuHandlers`) and returns the actions it made
(:class:`QtMenuActions`); it knows nothing of the window, which keeps the returned actions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMenu, QMenuBar, QMessageBox, QWidget

from ..search.types import Result
from .theme import THEMES

THEME_LABELS = {"system": "Follow &system", "light": "&Light", "dark": "&Dark"}


def _action(parent: QWidget, menu: QMenu, text: str, slot: Callable[[], object], shortcut=None,
            tip: str = "") -> QAction:
    """An action in ``menu``; ``shortcut`` is one key sequence or a list (the first is shown in the menu)."""
    action = QAction(text, parent)
    if isinstance(shortcut, list):  # one sequence once: twice in the shortcut map would make it ambiguous
        keys = {QKeySequence(k).toString(): QKeySequence(k) for k in shortcut if not QKeySequence(k).isEmpty()}
        action.setShortcuts(list(keys.values()))
    elif shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    if tip:
        action.setStatusTip(tip)
    action.triggered.connect(lambda *_: slot())
    menu.addAction(action)
    return action


@dataclass
class MenuHandlers:
    """What the menu entries do."""

    open_folder: Callable[[], object]
    export_results: Callable[[], object]
    export_selection: Callable[[], object]
    copy_paths: Callable[[], object]
    go_back: Callable[[], object]
    go_forward: Callable[[], object]
    reindex: Callable[[], object]
    cancel_indexing: Callable[[], object]
    open_settings: Callable[[], object]
    quit: Callable[[], object]
    find: Callable[[], object]
    clear_search: Callable[[], object]
    set_theme: Callable[[str], object]
    toggle_dark: Callable[[], object]
    toggle_explanation: Callable[[], object]


@dataclass
class QtMenuActions:
    """The actions and submenus the window refers to later (shortcut tests, the recent-folders list, themes)."""

    open: QAction
    recent: QMenu
    export: QAction
    export_selection: QAction
    copy_paths: QAction
    back: QAction
    forward: QAction
    reindex: QAction
    cancel: QAction
    settings: QAction
    find: QAction
    clear: QAction
    themes: dict[str, QAction]
    toggle_dark: QAction


def build_menus(parent: QWidget, bar: QMenuBar, h: MenuHandlers) -> QtMenuActions:
    """Fill ``bar`` with the File, Edit, View and Help menus."""
    file_menu = bar.addMenu("&File")
    open_ = _action(parent, file_menu, "&Open folder…", h.open_folder, QKeySequence.Open,
                    "Open and index a folder of photos")
    recent = file_menu.addMenu("Open &recent")
    file_menu.addSeparator()
    export = _action(parent, file_menu, "&Export results…", h.export_results, "Ctrl+E",
                     "Save the results shown as CSV")
    export_selection = _action(parent, file_menu, "Export &selection…", h.export_selection, "Ctrl+Shift+E",
                               "Save the selected results as CSV")
    reindex = _action(parent, file_menu, "Re-&index folder", h.reindex, tip="Index new or changed photos of the open folder")
    cancel = _action(parent, file_menu, "&Cancel indexing", h.cancel_indexing)
    file_menu.addSeparator()
    settings = _action(parent, file_menu, "&Settings…", h.open_settings, [QKeySequence.Preferences, "Ctrl+,"])
    file_menu.addSeparator()
    _action(parent, file_menu, "&Quit", h.quit, QKeySequence.Quit)

    edit_menu = bar.addMenu("&Edit")
    find = _action(parent, edit_menu, "&Find", h.find, QKeySequence.Find, "Focus the search box")
    clear = _action(parent, edit_menu, "C&lear search", h.clear_search, "Esc", "Show the whole library again")
    copy_paths = _action(parent, edit_menu, "Copy &paths", h.copy_paths, tip="Copy the selected photos' paths")

    view_menu = bar.addMenu("&View")
    back = _action(parent, view_menu, "&Back", h.go_back, ["Alt+Left", QKeySequence.Back], "The previous results")
    forward = _action(parent, view_menu, "&Forward", h.go_forward, ["Alt+Right", QKeySequence.Forward],
                      "The next results")
    view_menu.addSeparator()
    theme_menu = view_menu.addMenu("&Theme")
    group = QActionGroup(parent)
    themes = {}
    for key in THEMES:
        action = _action(parent, theme_menu, THEME_LABELS[key], lambda k=key: h.set_theme(k))
        action.setCheckable(True)
        action.setData(key)
        group.addAction(action)
        themes[key] = action
    toggle_dark = _action(parent, view_menu, "Toggle &dark mode", h.toggle_dark, "Ctrl+Shift+D")
    view_menu.addSeparator()
    _action(parent, view_menu, "Show &explanation panel", h.toggle_explanation, "F9")

    help_menu = bar.addMenu("&Help")
    _action(parent, help_menu, "&Keyboard shortcuts",
            lambda: QMessageBox.information(parent, "Keyboard shortcuts", SHORTCUTS))
    _action(parent, help_menu, "&About", lambda: QMessageBox.about(parent, "About SFE Explorer", ABOUT))
    return QtMenuActions(open_, recent, export, export_selection, copy_paths, back, forward, reindex, cancel,
                         settings, find, clear, themes, toggle_dark)


class ResultActions(Protocol):
    """What the result context menu asks of its window."""

    def find_captions(self, photo: str) -> None: ...
    def find_similar(self, photo: str) -> None: ...
    def open_photo(self, path: str) -> None: ...
    def view_photo(self, path: str) -> None: ...
    def copy_text(self, text: str) -> None: ...
    def copy_paths(self) -> None: ...
    def export_selection(self) -> None: ...
    def reveal(self, path: str) -> None: ...
    def search_for(self, text: str) -> None: ...


def result_context_menu(parent: QWidget, w: ResultActions, result: Result, selected: int = 1) -> QMenu:
    """Right-click menu of one result (``selected``: how many are selected, it among them): search by it, view
    it, copy it, show it in the file manager; with several selected, copy their paths or export them."""
    menu = QMenu(parent)
    if selected > 1:
        _action(parent, menu, f"Copy {selected} &paths", w.copy_paths)
        _action(parent, menu, f"&Export {selected} selected…", w.export_selection)
        menu.addSeparator()
    if result.path:
        path = result.path
        _action(parent, menu, "&View", lambda: w.view_photo(path), tip="Show it at full size here (Enter)")
        _action(parent, menu, "Find &captions", lambda: w.find_captions(path), tip="Captions that describe this photo")
        _action(parent, menu, "Find &similar photos", lambda: w.find_similar(path))
        menu.addSeparator()
        _action(parent, menu, "&Open in default app", lambda: w.open_photo(path))
        _action(parent, menu, "Copy pat&h", lambda: w.copy_text(path))
        _action(parent, menu, "&Reveal in file manager", lambda: w.reveal(path))
    if result.caption:
        caption = result.caption
        _action(parent, menu, "Copy ca&ption", lambda: w.copy_text(caption))
        _action(parent, menu, "&Search for this caption", lambda: w.search_for(caption))
    return menu


SHORTCUTS = """Ctrl+O        open a folder
Ctrl+F        focus the search box
Enter         search (in the box; a photo's path searches by that photo)
Up / Down     earlier searches (in the box)
Esc           clear the search: back to the whole library
Alt+Left / Alt+Right   back / forward (also the mouse's side buttons)
Tab           from the search box to the results
Enter, Space  view the selected photo; in the viewer: ← → step, H heatmap, Esc back
Ctrl+A        select all results (in the results); Ctrl+C copy their paths
Ctrl+E        export the results shown as CSV; Ctrl+Shift+E the selected ones
Ctrl+,        settings
Ctrl+Shift+D  toggle dark mode
F9            show or hide the explanation panel
Drop a folder to open it, or a photo to find captions for it."""

ABOUT = """<b>SFE Explorer</b><br>Search a local photo folder by meaning with a step-wise feature enhancement
(SFE) image-text retrieval model, and see why a photo matched."""
