"""QtMainWindow: search box, library and results, built-in viewer, explanation panel, indexing progress, menus.

The result pane shows one :class:`~sfe_desktop.qt.history.Page` at a time: the library (every indexed photo, by
date taken) while the search box is empty, else the results of a search by text, by a photo (its captions, the
photo above them) or for similar photos. Pages go into a Back/Forward history. The sort and filter controls
arrange the page's results (:mod:`sfe_desktop.search.browse`); the model's confidence separates strong matches
from weak ones, and a search that matches nothing says so.
"""
from __future__ import annotations

import html
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
from PySide6.QtCore import (QEvent, QItemSelectionModel, QModelIndex, QSettings, QSize, QStandardPaths, Qt, QThreadPool, QTimer, QUrl,
                            Signal)
from PySide6.QtGui import QDesktopServices, QGuiApplication, QIcon
from PySide6.QtWidgets import (QApplication, QFileDialog, QHBoxLayout, QLabel, QMainWindow, QMenu, QPushButton,
                               QSplitter, QStackedWidget, QToolButton, QVBoxLayout, QWidget)

from ..data.images import IMAGE_EXTENSIONS
from ..explanation.graph_plot import GraphRoles
from ..search.browse import nothing_matches, subfolders
from ..search.types import IMAGE_TO_IMAGE, IMAGE_TO_TEXT, LIBRARY, TEXT_TO_IMAGE, IndexSummary, Result
from .delegates import QtResultDelegate
from .history import History, Page
from .menus import MenuHandlers, build_menus, result_context_menu
from .models import QtResultsModel
from .models.results_model import ResultRole, match_line
from .session import QtSession, RuntimeFactory
from .startup import folder_problem
from .texts import index_status, library_label, plural, results_label, skipped_message
from .theme import THEMES, apply_theme
from .widgets.browse_bar import QtBrowseBar
from .widgets.explanation_panel import QtExplanationPanel
from .widgets.message_bar import QtMessageBar
from .widgets.progress import QtIndexProgress
from .widgets.query_header import QtQueryHeader
from .widgets.results_view import QtResultsView
from .widgets.search_bar import QtSearchBar
from .widgets.settings_dialog import AppSettings, QtSettingsDialog
from .widgets.viewer import QtPhotoViewer

if TYPE_CHECKING:
    from ..explanation import Explanation
    from ..model.runtime import SFERuntime

log = logging.getLogger(__name__)
APP_NAME = "SFE Explorer"
MAX_RECENT = 8
LIBRARY_REFRESH_MS = 2000  # while indexing, the library view shows newly indexed photos this often
ROLES = {TEXT_TO_IMAGE: GraphRoles("your search", "the photo"), IMAGE_TO_TEXT: GraphRoles("the caption", "your photo")}
PLACEHOLDER = "Select a result to see why it matched."


class QtMainWindow(QMainWindow):
    """The application window.

    Parameters
    ----------
    settings
        Where preferences, recent folders and the search history persist (tests pass an INI file).
    runtime_factory
        ``factory(checkpoint, device) -> SFERuntime``; defaults to ``SFERuntime.load``.
    checkpoint, device
        Command-line overrides of the saved settings.
    """

    message_shown = Signal(str, str)  # level, text
    page_shown = Signal(object)       # the Page now in the result pane

    def __init__(self, settings: QSettings | None = None, runtime_factory: RuntimeFactory | None = None,
                 checkpoint: str | None = None, device: str | None = None, icon: QIcon | None = None):
        super().__init__()
        self.qsettings = settings or QSettings()
        self.prefs = AppSettings.load(self.qsettings)
        if checkpoint is not None:
            self.prefs.checkpoint = checkpoint or None
        if device is not None:
            self.prefs.device = device
        self.url_opener: Callable[[QUrl], bool] = QDesktopServices.openUrl
        self.session = QtSession(runtime_factory, self)
        self.history = History()
        self.page: Page | None = None
        self._pending: tuple[str, str] | None = None  # (direction, query) asked for before searching was possible
        self._rerun: tuple[str, str] | None = None    # a search re-run after indexing: replaces its page
        self._sorts = {"library": "newest", "search": "relevance"}
        self.setWindowTitle(APP_NAME)
        if icon is not None:
            self.setWindowIcon(icon)
        self.setAcceptDrops(True)
        self._build_ui()
        self._build_menus()
        self._connect_session()
        self.theme = str(self.qsettings.value("view/theme", "system"))
        self.dark = False
        self._sync_actions()
        QTimer.singleShot(0, self._load_runtime)  # after the window is shown

    # -- layout --------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.message_bar = QtMessageBar()
        self.search_bar = QtSearchBar()
        self.search_bar.set_history(self._saved_history())
        self.back_button, self.forward_button = QToolButton(), QToolButton()
        for button, arrow, tip in ((self.back_button, Qt.LeftArrow, "Back (Alt+Left)"),
                                   (self.forward_button, Qt.RightArrow, "Forward (Alt+Right)")):
            button.setArrowType(arrow)
            button.setToolTip(tip)
            button.setAutoRaise(True)
            button.setFocusPolicy(Qt.NoFocus)
        self.progress = QtIndexProgress()
        self.progress.hide()
        self.browse = QtBrowseBar()
        self.results_label = self.browse.label
        self.results_label.setText("Open a folder of photos to start (File → Open folder…, Ctrl+O, "
                                   "or drop a folder here).")
        self.model = QtResultsModel(thumb_size=320, parent=self)
        self.delegate = QtResultDelegate(tile=160, parent=self)
        self.view = QtResultsView(self.delegate)
        self.view.setModel(self.model)
        self.photo_pool = QThreadPool(self)  # the viewer's and the header's photos (the grid's pool is cleared)
        self.photo_pool.setMaxThreadCount(2)
        self.header = QtQueryHeader(self.photo_pool)
        self.header.hide()
        self.no_match = QWidget()
        self.no_match_label = QLabel()
        self.no_match_label.setAlignment(Qt.AlignCenter)
        self.no_match_label.setWordWrap(True)
        self.show_closest = QPushButton("Show the closest results anyway")
        no_match_lay = QVBoxLayout(self.no_match)
        no_match_lay.addStretch(1)
        no_match_lay.addWidget(self.no_match_label)
        no_match_lay.addWidget(self.show_closest, 0, Qt.AlignHCenter)
        no_match_lay.addStretch(2)
        self.viewer = QtPhotoViewer(self.photo_pool)
        self.stack = QStackedWidget()
        for page in (self.view, self.no_match, self.viewer):
            self.stack.addWidget(page)
        self.explanation = QtExplanationPanel()

        top = QHBoxLayout()
        top.setSpacing(2)
        top.addWidget(self.back_button)
        top.addWidget(self.forward_button)
        top.addWidget(self.search_bar, 1)
        left = QWidget()
        lay = QVBoxLayout(left)
        lay.setContentsMargins(8, 8, 4, 4)
        lay.addWidget(self.message_bar)
        lay.addLayout(top)
        for w in (self.progress, self.browse, self.header):
            lay.addWidget(w)
        lay.addWidget(self.stack, 1)
        self.splitter = QSplitter(Qt.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.explanation)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)
        self.setCentralWidget(self.splitter)

        self.model_label = QLabel("Model: loading…")
        self.device_label = QLabel("Device: —")
        self.statusBar().addPermanentWidget(self.model_label)
        self.statusBar().addPermanentWidget(self.device_label)
        self._library_timer = QTimer(self)
        self._library_timer.setInterval(LIBRARY_REFRESH_MS)
        self._library_timer.timeout.connect(self._refresh_library_while_indexing)

        self.search_bar.search_requested.connect(self.search)
        self.search_bar.photo_requested.connect(self.find_captions)
        self.search_bar.cleared.connect(self.clear_search)
        self.back_button.clicked.connect(self.go_back)
        self.forward_button.clicked.connect(self.go_forward)
        self.progress.cancel_requested.connect(self.session.cancel_indexing)
        self.browse.changed.connect(self._on_arrangement_changed)
        self.view.selectionModel().currentChanged.connect(self._on_current_changed)
        self.view.selectionModel().selectionChanged.connect(lambda *_: self._sync_actions())
        self.view.open_requested.connect(self._on_open_requested)
        self.view.copy_requested.connect(self.copy_paths)
        self.view.customContextMenuRequested.connect(self._context_menu)
        self.show_closest.clicked.connect(self._show_weak)
        self.header.view_requested.connect(self.view_photo)
        self.header.other_search.connect(lambda kind, path: (self.find_similar if kind == IMAGE_TO_IMAGE
                                                             else self.find_captions)(path))
        self.viewer.step.connect(self._viewer_step)
        self.viewer.closed.connect(self.close_viewer)
        self.viewer.open_external.connect(self.open_photo)
        self.explanation.graph.photo_clicked.connect(self.select_photo)
        self.explanation.graph.caption_clicked.connect(self.search_for)
        for widget in (self, self.view.viewport(), self.viewer.canvas, self.no_match):
            widget.installEventFilter(self)  # the mouse's back and forward buttons

        screen = QGuiApplication.primaryScreen()
        avail = screen.availableGeometry().size() if screen else QSize(1600, 1000)
        self.resize(min(1400, int(avail.width() * 0.9)), min(900, int(avail.height() * 0.9)))
        self.splitter.setSizes([self.width() * 55 // 100, self.width() * 45 // 100])
        geometry = self.qsettings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)

    def _build_menus(self) -> None:
        self.actions = build_menus(self, self.menuBar(), MenuHandlers(
            open_folder=self.open_folder_dialog, export_results=self.export_results,
            export_selection=self.export_selection, copy_paths=self.copy_paths, go_back=self.go_back,
            go_forward=self.go_forward, reindex=lambda: self.session.start_indexing(),
            cancel_indexing=self.session.cancel_indexing, open_settings=self.open_settings, quit=self.close,
            find=lambda: (self.search_bar.setFocus(), self.search_bar.selectAll()), clear_search=self.clear_search,
            set_theme=self.set_theme, toggle_dark=lambda: self.set_theme("light" if self.dark else "dark"),
            toggle_explanation=lambda: self.explanation.setVisible(not self.explanation.isVisible())))
        self._rebuild_recent_menu()

    def _sync_actions(self) -> None:
        """Enable what can be done now: nothing about a folder without one, Cancel only while indexing."""
        has_folder = self.session.folder is not None
        shown = self.model.rowCount() > 0
        self.actions.export.setEnabled(has_folder)
        self.actions.export_selection.setEnabled(shown and bool(self.view.selectionModel().selectedIndexes()))
        self.actions.copy_paths.setEnabled(shown)
        self.actions.reindex.setEnabled(self.session.collection is not None and not self.session.indexing)
        self.actions.cancel.setEnabled(self.session.indexing)
        self.actions.back.setEnabled(self.history.can_back())
        self.actions.forward.setEnabled(self.history.can_forward())
        self.back_button.setEnabled(self.history.can_back())
        self.forward_button.setEnabled(self.history.can_forward())

    # -- messages ------------------------------------------------------------------------------
    def show_message(self, text: str, level: str = "error") -> None:
        log.info("%s: %s", level, text)
        self.message_bar.show_message(text, level)
        self.message_shown.emit(level, text)

    def _status(self, text: str, ms: int = 0) -> None:
        self.statusBar().showMessage(text, ms)

    # -- model runtime -------------------------------------------------------------------------
    def _connect_session(self) -> None:
        s = self.session
        s.runtime_loaded.connect(self._on_runtime_loaded)
        s.runtime_failed.connect(self._on_runtime_failed)
        s.collection_opened.connect(self._on_collection_opened)
        s.collection_failed.connect(lambda m: self._on_folder_failed(m))
        s.index_progress.connect(self.progress.update_progress)
        s.index_finished.connect(self._on_index_finished)
        s.index_failed.connect(self._on_index_failed)
        s.results_ready.connect(self._on_results)
        s.search_failed.connect(self._on_search_failed)
        s.explanation_ready.connect(self._on_explanation)
        s.similar_ready.connect(self._on_similar)
        s.explanation_failed.connect(lambda m: self.explanation.show_placeholder(f"No explanation: {m}"))
        s.library_ready.connect(self._on_library)
        s.library_failed.connect(lambda m: self.show_message(f"Could not list the photos: {m}"))

    def _load_runtime(self) -> None:
        self.model_label.setText("Model: loading…")
        self.device_label.setText("Device: —")
        self._status("Loading the model in the background…")
        self.session.load_runtime(self.prefs.checkpoint, self.prefs.device)

    def _on_runtime_loaded(self, runtime: SFERuntime) -> None:
        device = str(getattr(runtime, "device", "cpu"))
        self.device_label.setText(f"Device: {device.upper()}")
        name = Path(self.prefs.checkpoint).name if self.prefs.checkpoint else "default"
        self.model_label.setText(f"Model: {name}")
        self.model_label.setToolTip(f"checkpoint id {getattr(runtime, 'checkpoint_id', '?')}")
        self._status("Model ready.", 4000)
        if self.message_bar.level == "error" and "model" in self.message_bar.text().lower():
            self.message_bar.dismiss()
        if self.session.folder is None and not self.session.pending_folder:
            self.results_label.setText("Model ready. Open a folder of photos (Ctrl+O) or drop one here.")

    def _on_runtime_failed(self, message: str) -> None:
        self.model_label.setText("Model: not loaded")
        self.progress.hide()
        self._pending = None
        self.show_message(f"Could not load the model: {message} Choose another checkpoint in "
                          "Settings (File → Settings…).")

    # -- folders and indexing ------------------------------------------------------------------
    def open_folder_dialog(self) -> None:
        start = self.session.folder or str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Open a photo folder", start)
        if folder:
            self.open_folder(folder)

    def open_folder(self, folder: str) -> bool:
        """Open ``folder`` and index it in the background; False (with a message) if it cannot be read."""
        folder = os.path.abspath(os.path.expanduser(str(folder)))
        problem = folder_problem(folder)
        if problem:
            self.show_message(problem)
            return False
        self.message_bar.dismiss()
        self._add_recent(folder)
        self.setWindowTitle(f"{Path(folder).name or folder} — {APP_NAME}")
        self.model.resolve = None
        self.history.clear()
        self.browse.reset_filters()
        self.close_viewer()
        self.session.open_folder(folder)
        self._show_page(Page(LIBRARY), push=True)
        self.progress.start(folder)
        if self.session.runtime is None:
            self.progress.label.setText("Waiting for the model to load…")
        self.results_label.setText(f"Indexing {folder}… you can search what is indexed so far.")
        self._sync_actions()
        return True

    def _on_folder_failed(self, message: str) -> None:
        self.progress.hide()
        self._pending = None
        self.show_message(f"Could not open the folder: {message}")

    def _on_collection_opened(self, folder: str) -> None:
        coll = self.session.collection
        self.model.resolve = getattr(coll, "thumbnail", None)  # the core's thumbnail cache
        self._status(f"Opened {folder}", 3000)
        if getattr(coll, "notice", None):  # the index was damaged, moved aside and is being rebuilt
            self.show_message(coll.notice, "warning")
        if getattr(coll, "read_only", False):  # not indexed again: the folder cannot be written
            self.progress.hide()
            self.results_label.setText(f"Searching the existing index of {folder}.")
            self.show_message("This folder's index is read-only: searches use it as it is, and new or changed "
                              "photos are not indexed.", "info")
        else:
            self._library_timer.start()  # the library grows while the folder is indexed
        self.session.load_library()
        self._sync_actions()
        if self._pending is not None:  # asked for while the model loaded or the folder opened
            (kind, query), self._pending = self._pending, None
            self._query(kind, query)

    def _refresh_library_while_indexing(self) -> None:
        if not self.session.indexing:
            self._library_timer.stop()
        elif self.page is not None and self.page.is_library and self.stack.currentWidget() is not self.viewer:
            self.session.load_library()

    def _on_index_finished(self, summary: IndexSummary | None) -> None:
        self.progress.hide()
        self._library_timer.stop()
        QTimer.singleShot(0, self._sync_actions)  # once the session has let go of its index worker
        if summary is None or getattr(summary, "cancelled", False):
            done = getattr(summary, "searchable", 0) if summary else 0
            self._status(f"Indexing cancelled: {plural(done, 'photo')} searchable; what was indexed is kept.")
        else:
            self._status(index_status(summary))
            if summary.total == 0:
                self.show_message("No photos were found in this folder (JPEG, PNG, WebP, BMP, GIF, TIFF).",
                                  "warning")
            elif summary.skipped:
                self.show_message(skipped_message(self.session.skipped, summary.total), "warning")
        self._refresh_page()

    def _refresh_page(self) -> None:
        """Bring the page up to date with the index: the library listed again, a search run again."""
        page = self.page
        if page is None or page.is_library:
            self.session.load_library()
        elif page.query:
            self._rerun = (page.kind, page.query)
            self._query(page.kind, page.query, remember=False)

    def _on_index_failed(self, message: str) -> None:
        self.progress.hide()
        self._library_timer.stop()
        QTimer.singleShot(0, self._sync_actions)
        self.show_message(f"Indexing failed: {message}")

    # -- recent folders ------------------------------------------------------------------------
    def _add_recent(self, folder: str) -> None:
        recent = [folder] + [f for f in self.recent_folders() if f != folder]
        self.qsettings.setValue("recent/folders", recent[:MAX_RECENT])
        self._rebuild_recent_menu()

    def recent_folders(self) -> list[str]:
        value = self.qsettings.value("recent/folders", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or []) if v]

    def _rebuild_recent_menu(self) -> None:
        menu = self.actions.recent
        menu.clear()
        for folder in self.recent_folders():
            menu.addAction(folder, lambda f=folder: self.open_folder(f))
        menu.setEnabled(bool(self.recent_folders()))

    def _saved_history(self) -> list[str]:
        value = self.qsettings.value("search/history", [])
        return [value] if isinstance(value, str) else [str(v) for v in (value or [])]

    # -- searching -----------------------------------------------------------------------------
    def _query(self, kind: str, query: str, remember: bool = True) -> None:
        """Run a search now, or once the folder can be searched (the model may still be loading)."""
        if self.session.collection is None:
            if self.session.folder:  # the model is loading, or the folder is being opened
                self._pending = (kind, query)
                what = f"“{query}”" if kind == TEXT_TO_IMAGE else Path(query).name
                waiting = "the model has loaded" if self.session.runtime is None else "the folder is open"
                self.show_message(f"Searching for {what} as soon as {waiting}…", "info")
                self.results_label.setText(f"Waiting to search for {what}…")
                return
            self.show_message("Open a photo folder before searching (File → Open folder…, Ctrl+O).")
            return
        if remember and kind == TEXT_TO_IMAGE:
            self.search_bar.remember(query)
            self.qsettings.setValue("search/history", self.search_bar.history)
        top = self.prefs.top_k
        if kind == TEXT_TO_IMAGE:
            self.results_label.setText(f"Searching for “{query}”…")
            self.session.search_text(query, top)
        elif kind == IMAGE_TO_TEXT:
            self.results_label.setText(f"Finding captions for {Path(query).name}…")
            self.session.search_image(query, top)
        else:
            self.results_label.setText(f"Finding photos similar to {Path(query).name}…")
            self.session.similar(query, top)

    def search(self, text: str | None = None) -> None:
        text = " ".join((self.search_bar.text() if text is None else text).split())
        if not text:
            self.clear_search()
            return
        self._query(TEXT_TO_IMAGE, text)

    def find_captions(self, photo: str) -> None:
        self._query(IMAGE_TO_TEXT, os.path.abspath(photo))

    def find_similar(self, photo: str) -> None:
        self._query(IMAGE_TO_IMAGE, os.path.abspath(photo))

    def search_for(self, text: str) -> None:
        """Put ``text`` in the search box and search for it."""
        self.search_bar.setText(text)
        self.search(text)

    def clear_search(self) -> None:
        """Esc, or an empty query: the library again, the status line and notices cleared."""
        self.search_bar.clear()
        self._pending = None
        self.statusBar().clearMessage()
        if self.message_bar.level in ("info", "warning"):
            self.message_bar.dismiss()
        if self.stack.currentWidget() is self.viewer:
            self.close_viewer()
        if self.session.folder is None:
            self.model.clear()
            self.explanation.show_placeholder(PLACEHOLDER)
            return
        if self.page is not None and self.page.is_library:
            self._show_page(self.page, push=False)
        else:
            self._show_page(Page(LIBRARY, results=self._library_results()), push=True)
            self.session.load_library()

    def _library_results(self) -> list[Result]:
        return next((p.results for p in reversed(self.history.pages) if p.is_library), [])

    def _on_search_failed(self, message: str) -> None:
        self._rerun = None
        self.show_message(f"Search failed: {message}")

    def _on_results(self, direction: str, query: str, results: list[Result]) -> None:
        log.info("%s search for %r: %d results", direction, query, len(results))
        page = Page(direction, query, list(results))
        replace = self._rerun == (direction, query) and self.page is not None and self.page.same_search(
            direction, query)
        self._rerun = None
        if replace:
            page.show_weak = self.page.show_weak
        if self.message_bar.level == "info":
            self.message_bar.dismiss()
        self._show_page(page, push=not replace)
        if not results:
            hint = " Indexing is still running; try again when it finishes." if self.session.indexing else ""
            self.show_message(f"No results: nothing was found {self._what(page)}.{hint}", "info")

    @staticmethod
    def _what(page: Page) -> str:
        return {TEXT_TO_IMAGE: f"for “{page.query}”", IMAGE_TO_TEXT: f"for {Path(page.query).name}",
                IMAGE_TO_IMAGE: f"similar to {Path(page.query).name}"}.get(page.kind, "")

    def _on_library(self, results: list[Result]) -> None:
        if self.page is None or not self.page.is_library:
            for page in self.history.pages:  # kept for Back
                if page.is_library:
                    page.results = results
            return
        self.page.results = results
        self._show_page(self.page, push=False)

    # -- the result pane -----------------------------------------------------------------------
    def _show_page(self, page: Page, push: bool) -> None:
        """Show ``page`` in the result pane (``push``: as a new step of the history, else in place)."""
        if push:
            self.history.push(page)
            self.close_viewer()
        else:
            self.history.replace(page)
        previous, self.page = self.page, page
        kind = "library" if page.is_library else "search"
        if previous is None or previous.is_library != page.is_library or previous.kind != page.kind:
            self.browse.set_sort(self._sorts[kind] if page.kind != IMAGE_TO_TEXT else "relevance")
        if page.kind == TEXT_TO_IMAGE:
            self.search_bar.setText(page.query)
        elif not self.search_bar.hasFocus() or page.kind in (IMAGE_TO_TEXT, IMAGE_TO_IMAGE):
            self.search_bar.clear()  # the box never shows an earlier text beside a photo's results
        photos = page.kind != IMAGE_TO_TEXT
        self.browse.set_photo_controls(photos, relevance=not page.is_library)
        self.browse.set_folders(subfolders(page.results, self.session.folder or "") if photos else [])
        if page.kind in (IMAGE_TO_TEXT, IMAGE_TO_IMAGE):
            self.header.show_query(page.kind, page.query, len(page.results))
        else:
            self.header.hide()
        self._arrange(keep_current=not push)
        if push:
            self.view.scrollToTop()  # a new page starts at its best (or newest) result
        self._sync_actions()
        self.page_shown.emit(page)

    def _arrange(self, keep_current: bool = True) -> None:
        """Fill the view with the page's results as the sort and filter controls say (``keep_current``: the
        current photo or caption stays current where it is still listed)."""
        page = self.page
        if page is None:
            return
        arrangement = self.browse.arrangement()
        shown = arrangement.apply(page.results, self.session.folder or "")
        if page.is_library:
            self.results_label.setText(library_label(self.session.folder or "", len(page.results), len(shown),
                                                     arrangement.filters(), self.session.indexing))
        elif page.results:
            self.results_label.setText(results_label(page.kind, page.query, page.results, len(shown),
                                                     arrangement.filters()))
        else:
            self.results_label.setText(f"Nothing {self._what(page)}.")
        self.view.set_grid_mode(page.kind != IMAGE_TO_TEXT)
        current = self.view.currentIndex().data(ResultRole) if keep_current else None
        keep = current.path or current.caption if current is not None else None
        if self.stack.currentWidget() is not self.viewer:
            matches_nothing = nothing_matches(page.results) and not page.show_weak
            self.stack.setCurrentWidget(self.no_match if matches_nothing else self.view)
            if matches_nothing:
                self.no_match_label.setText(
                    f"<h2>Nothing matches {self._what(page).removeprefix('for ')}.</h2>"
                    f"The model is less than 50% sure of every one of the {plural(len(page.results), 'result')}."
                    " Try other words, or look at the closest ones anyway.")
                shown = []
        self.model.set_results(shown)
        row = next((i for i, r in enumerate(shown) if keep and (r.path or r.caption) == keep), None)
        if row is not None:
            self.view.setCurrentIndex(self.model.index(row))
        else:
            self.explanation.show_placeholder(PLACEHOLDER if shown else "")
        self._sync_actions()

    def _on_arrangement_changed(self) -> None:
        if self.page is not None and self.page.kind != IMAGE_TO_TEXT:
            self._sorts["library" if self.page.is_library else "search"] = self.browse.arrangement().sort
        self._arrange()

    def _show_weak(self) -> None:
        if self.page is not None:
            self.page.show_weak = True
            self._arrange()

    def go_back(self) -> None:
        self._go(self.history.back())

    def go_forward(self) -> None:
        self._go(self.history.forward())

    def _go(self, page: Page | None) -> None:
        if page is None:
            return
        self.close_viewer()
        self._show_page(page, push=False)
        if page.is_library:  # photos may have been indexed since
            self.session.load_library()

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt API
        if event.type() == QEvent.MouseButtonPress and event.button() in (Qt.BackButton, Qt.ForwardButton):
            (self.go_back if event.button() == Qt.BackButton else self.go_forward)()
            return True
        return super().eventFilter(watched, event)

    # -- selection, viewer and explanation -------------------------------------------------------
    def _on_current_changed(self, current, _previous) -> None:
        result = current.data(ResultRole) if current.isValid() else None
        if result is None or self.session.collection is None:
            return
        if result.direction == LIBRARY:
            self.explanation.show_placeholder(
                f"{os.path.basename(result.path or '')}\n\nSearch for something to see why a photo matches it.")
            return
        self.explanation.show_placeholder("Computing the explanation…")
        self.session.explain(result)

    def _title(self, result: Result) -> str:
        if result.direction == IMAGE_TO_TEXT:
            name, query = f"“{result.caption}”", Path(result.query).name
        else:
            name = os.path.basename(result.path or "")
            query = f"“{result.query}”" if result.direction == TEXT_TO_IMAGE else Path(result.query).name
        how = (f"{'strong' if result.confidence >= 0.5 else 'weak'} match, {result.confidence:.0%} confidence"
               if result.confidence is not None else f"score {result.score:.2f}")
        return f"<b>{html.escape(name, quote=False)}</b> — {how} for {html.escape(query, quote=False)}"

    def _on_explanation(self, result: Result, explanation: Explanation, image: np.ndarray | None) -> None:
        self.explanation.set_explanation(explanation, image, self._title(result), match_line(result),
                                         ROLES.get(result.direction))
        self.viewer.set_heatmap(explanation.photo, explanation.heatmap, explanation.grid)

    def _on_similar(self, result: Result, images, comparison) -> None:
        # the model's own cosine of the two photos, not the search's fused score (in units of spreads)
        title = (f"<b>{html.escape(os.path.basename(result.path or ''), quote=False)}</b> — "
                 f"{max(comparison.cosine, 0.0):.0%} alike to {html.escape(Path(result.query).name, quote=False)}")
        self.explanation.show_similar(result.query, result.path or "", comparison, images, title,
                                      f"cosine {comparison.cosine:.4f}; {match_line(result)}")

    def _on_open_requested(self, index: QModelIndex) -> None:
        result = index.data(ResultRole)
        if result is None:
            return
        if result.path:
            self.open_viewer(index)
        elif result.caption:
            self.search_for(result.caption)

    def open_viewer(self, index: QModelIndex) -> None:
        """Show the photo of ``index`` in the built-in viewer (← → step through the results, Esc back)."""
        self.view.setCurrentIndex(index)
        self.viewer.show_result(index.data(ResultRole), index.row() + 1, self.model.rowCount())
        self.stack.setCurrentWidget(self.viewer)
        self.viewer.setFocus()

    def view_photo(self, path: str) -> None:
        """The viewer on ``path``: its result when it is listed, else the photo alone."""
        row = next((i for i, r in enumerate(self.model.results()) if r.path == path), None)
        if row is not None:
            self.open_viewer(self.model.index(row))
            return
        self.viewer.show_result(Result(1, 0.0, 0.0, LIBRARY, "", path=path), 1, 1)
        self.stack.setCurrentWidget(self.viewer)
        self.viewer.setFocus()

    def _viewer_step(self, step: int) -> None:
        row = self.view.currentIndex().row() + step
        if self.stack.currentWidget() is self.viewer and 0 <= row < self.model.rowCount():
            index = self.model.index(row)
            if index.data(ResultRole).path:
                self.open_viewer(index)

    def close_viewer(self) -> None:
        if self.stack.currentWidget() is not self.viewer:
            return
        self.stack.setCurrentWidget(self.view)
        if self.view.currentIndex().isValid():
            self.view.scrollTo(self.view.currentIndex())
        self.view.setFocus()

    def select_photo(self, path: str) -> None:
        """Select ``path`` in the results (a photo node of the graph was clicked), or view it if not listed."""
        row = next((i for i, r in enumerate(self.model.results()) if r.path == path), None)
        if row is None:
            self.view_photo(path)
            return
        index = self.model.index(row)
        if index != self.view.currentIndex():
            self.view.setCurrentIndex(index)
        self.view.selectionModel().select(index, QItemSelectionModel.ClearAndSelect)
        self.view.scrollTo(index)

    def current_result(self) -> Result | None:
        return self.view.currentIndex().data(ResultRole)

    def open_photo(self, path: str) -> None:
        if not self.url_opener(QUrl.fromLocalFile(path)):
            self.show_message(f"No application could open {path}.", "warning")

    def reveal(self, path: str) -> None:
        if not self.url_opener(QUrl.fromLocalFile(str(Path(path).parent))):
            self.show_message(f"Could not open the file manager for {Path(path).parent}.", "warning")

    def copy_text(self, text: str) -> None:
        QApplication.clipboard().setText(text)
        self._status("Copied to the clipboard.", 3000)

    def copy_paths(self) -> None:
        """Copy the selected photos' paths (one per line; captions when captions are listed)."""
        chosen = self.view.selected_results()
        lines = [r.path or r.caption or "" for r in chosen]
        if not lines:
            self._status("Nothing selected to copy.", 3000)
            return
        QApplication.clipboard().setText("\n".join(lines))
        what = "path" if chosen[0].path else "caption"
        self._status(f"Copied {plural(len(lines), what)} to the clipboard.", 4000)

    def _context_menu(self, pos) -> None:
        index = self.view.indexAt(pos)
        if not index.isValid():
            return
        selected = self.view.selectionModel().selectedIndexes()
        if index not in selected:
            self.view.setCurrentIndex(index)
            selected = [index]
        menu: QMenu = result_context_menu(self, self, index.data(ResultRole), len(selected))
        menu.exec(self.view.viewport().mapToGlobal(pos))

    # -- export, settings, theme -----------------------------------------------------------------
    def export_results(self, path: str | None = None) -> bool:
        """Save the results shown (as sorted and filtered) as CSV."""
        return self._export(self.model.results(), path, "results")

    def export_selection(self, path: str | None = None) -> bool:
        """Save the selected results as CSV."""
        chosen = [self.model.index(i.row()).data(ResultRole)
                  for i in sorted(self.view.selectionModel().selectedIndexes(), key=lambda i: i.row())]
        return self._export(chosen, path, "selection")

    def _export_dir(self) -> str:
        last = str(self.qsettings.value("export/dir", "") or "")
        if last and os.path.isdir(last):
            return last
        docs = QStandardPaths.writableLocation(QStandardPaths.DocumentsLocation)
        return docs if docs and os.path.isdir(docs) else str(Path.home())

    def _export(self, results: list[Result], path: str | None, what: str) -> bool:
        if not results:
            self.show_message("Nothing to export: no result is selected." if what == "selection" else
                              "Nothing to export: the list is empty. Open a folder or run a search first.",
                              "warning")
            return False
        if path is None:
            start = os.path.join(self._export_dir(), "sfe-results.csv")
            path, _ = QFileDialog.getSaveFileName(self, f"Export {what}", start, "CSV files (*.csv)")
            if not path:
                return False
        from ..export import write_csv
        from .workers import user_message

        try:
            write_csv(results, path)
        except Exception as exc:  # shown, never raised
            self.show_message(f"Could not export to {path}: {user_message(exc)}")
            return False
        self.qsettings.setValue("export/dir", os.path.dirname(os.path.abspath(path)))
        self._status(f"Exported {plural(len(results), 'result')} to {path}", 6000)
        return True

    def open_settings(self) -> QtSettingsDialog:
        dialog = QtSettingsDialog(self.prefs, bool(self.session.cuda_available), self)
        dialog.accepted.connect(lambda: self.apply_settings(dialog.values()))
        dialog.open()
        return dialog

    def apply_settings(self, new: AppSettings) -> None:
        reload = (new.device, new.checkpoint) != (self.prefs.device, self.prefs.checkpoint)
        self.prefs = new
        new.save(self.qsettings)
        if reload:
            self.progress.hide()
            self._load_runtime()
            if self.session.pending_folder:
                self.progress.start(self.session.pending_folder)
                self.progress.label.setText("Waiting for the model to load…")

    def set_theme(self, theme: str) -> None:
        self.theme = theme if theme in THEMES else "system"
        self.qsettings.setValue("view/theme", self.theme)
        self.dark = apply_theme(QApplication.instance(), self.theme)
        self.explanation.set_dark(self.dark)
        for action in self.actions.themes.values():
            action.setChecked(action.data() == self.theme)

    # -- drag and drop, close ------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt API
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.handle_drop(paths[0])

    def handle_drop(self, path: str) -> None:
        """A dropped folder is opened; a dropped photo is searched for captions."""
        if os.path.isdir(path):
            self.open_folder(path)
        elif Path(path).suffix.lower() in IMAGE_EXTENSIONS:
            self.find_captions(path)
        else:
            self.show_message(f"Drop a folder to open it, or a photo to find captions: {Path(path).name} is "
                              "neither.", "warning")

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.qsettings.setValue("window/geometry", self.saveGeometry())
        self._library_timer.stop()
        if self.session.indexing:
            self._status("Stopping indexing…")
            self.progress.label.setText("Stopping… what was indexed is kept.")
            QApplication.processEvents()
        self.model.shutdown()
        self.photo_pool.waitForDone(2000)
        self.session.shutdown()
        from .plot_canvas import render_pool

        render_pool().waitForDone(3000)
        self.qsettings.sync()
        super().closeEvent(event)
