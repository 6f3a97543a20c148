"""QtMainWindow: search box, results grid, explanation panel, indexing progress and menus."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from PySide6.QtCore import QSettings, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication, QIcon
from PySide6.QtWidgets import (QAbstractItemView, QApplication, QFileDialog, QLabel, QListView, QMainWindow, QMenu,
                               QSplitter, QVBoxLayout, QWidget)

from ..data.images import IMAGE_EXTENSIONS
from ..search.types import IMAGE_TO_IMAGE, IMAGE_TO_TEXT, TEXT_TO_IMAGE, IndexSummary, Result
from .delegates import QtResultDelegate
from .menus import MenuHandlers, build_menus, result_context_menu
from .models import QtResultsModel
from .models.results_model import ResultRole
from .session import QtSession, RuntimeFactory
from .startup import folder_problem
from .theme import THEMES, apply_theme
from .widgets.explanation_panel import QtExplanationPanel
from .widgets.message_bar import QtMessageBar
from .widgets.progress import QtIndexProgress
from .widgets.search_bar import QtSearchBar
from .widgets.settings_dialog import AppSettings, QtSettingsDialog

if TYPE_CHECKING:
    from ..explanation import Explanation
    from ..model.runtime import SFERuntime

log = logging.getLogger(__name__)
APP_NAME = "SFE Explorer"
MAX_RECENT = 8


class QtMainWindow(QMainWindow):
    """The application window.

    Parameters
    ----------
    settings
        Where preferences and recent folders persist (tests pass an INI file).
    runtime_factory
        ``factory(checkpoint, device) -> SFERuntime``; defaults to ``SFERuntime.load``.
    checkpoint, device
        Command-line overrides of the saved settings.
    """

    message_shown = Signal(str, str)  # level, text

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
        self.setWindowTitle(APP_NAME)
        if icon is not None:
            self.setWindowIcon(icon)
        self.setAcceptDrops(True)
        self._build_ui()
        self._build_menus()
        self._connect_session()
        self.theme = str(self.qsettings.value("view/theme", "system"))
        self.dark = False
        QTimer.singleShot(0, self._load_runtime)  # after the window is shown

    # -- layout --------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.message_bar = QtMessageBar()
        self.search_bar = QtSearchBar()
        self.progress = QtIndexProgress()
        self.progress.hide()
        self.results_label = QLabel("Open a folder of photos to start (File → Open folder…, Ctrl+O, "
                                    "or drop a folder here).")
        self.results_label.setWordWrap(True)
        self.model = QtResultsModel(thumb_size=320, parent=self)
        self.delegate = QtResultDelegate(tile=160, parent=self)
        self.view = QListView()
        self.view.setModel(self.model)
        self.view.setItemDelegate(self.delegate)
        self.view.setSelectionMode(QAbstractItemView.SingleSelection)
        self.view.setUniformItemSizes(True)
        self.view.setMouseTracking(True)
        self.view.setContextMenuPolicy(Qt.CustomContextMenu)
        self.view.setVerticalScrollMode(QAbstractItemView.ScrollPerPixel)
        self._set_grid_mode(True)
        self.explanation = QtExplanationPanel()

        left = QWidget()
        lay = QVBoxLayout(left)
        lay.setContentsMargins(8, 8, 4, 4)
        for w in (self.message_bar, self.search_bar, self.progress, self.results_label):
            lay.addWidget(w)
        lay.addWidget(self.view, 1)
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

        self.search_bar.search_requested.connect(self.search)
        self.search_bar.cleared.connect(self.clear_search)
        self.progress.cancel_requested.connect(self.session.cancel_indexing)
        self.view.selectionModel().currentChanged.connect(self._on_current_changed)
        self.view.activated.connect(self._on_activated)
        self.view.customContextMenuRequested.connect(self._context_menu)
        self.explanation.graph.photo_clicked.connect(self.open_photo)

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
            reindex=lambda: self.session.start_indexing(), cancel_indexing=self.session.cancel_indexing,
            open_settings=self.open_settings, quit=self.close,
            find=lambda: (self.search_bar.setFocus(), self.search_bar.selectAll()), clear_search=self.clear_search,
            set_theme=self.set_theme, toggle_dark=lambda: self.set_theme("light" if self.dark else "dark"),
            toggle_explanation=lambda: self.explanation.setVisible(not self.explanation.isVisible())))
        self._rebuild_recent_menu()

    def _set_grid_mode(self, grid: bool) -> None:
        self.delegate.caption_mode = not grid
        self.view.setViewMode(QListView.IconMode if grid else QListView.ListMode)
        self.view.setFlow(QListView.LeftToRight if grid else QListView.TopToBottom)
        self.view.setWrapping(grid)
        self.view.setResizeMode(QListView.Adjust)
        self.view.setMovement(QListView.Static)
        self.view.setSpacing(4 if grid else 0)
        self.view.setWordWrap(True)

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
        s.search_failed.connect(lambda m: self.show_message(f"Search failed: {m}"))
        s.explanation_ready.connect(self._on_explanation)
        s.explanation_failed.connect(lambda m: self.explanation.show_placeholder(f"No explanation: {m}"))

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
        self.model.clear()
        self.explanation.show_placeholder("Select a result to see why it matched.")
        self.session.open_folder(folder)
        self.progress.start(folder)
        if self.session.runtime is None:
            self.progress.label.setText("Waiting for the model to load…")
        self.results_label.setText(f"Indexing {folder}… you can search what is indexed so far.")
        return True

    def _on_folder_failed(self, message: str) -> None:
        self.progress.hide()
        self.show_message(f"Could not open the folder: {message}")

    def _on_collection_opened(self, folder: str) -> None:
        coll = self.session.collection
        self.model.resolve = getattr(coll, "thumbnail", None)  # the core's thumbnail cache
        self._status(f"Opened {folder}", 3000)

    def _on_index_finished(self, summary: IndexSummary | None) -> None:
        self.progress.hide()
        if summary is None or getattr(summary, "cancelled", False):
            done = getattr(summary, "searchable", 0) if summary else 0
            self.results_label.setText(f"Indexing cancelled; {done:,} photos are searchable.")
            self._status("Indexing cancelled — what was indexed is kept.", 6000)
            return
        self.results_label.setText(f"{summary.searchable:,} photos indexed in {Path(self.session.folder or '').name}. "
                                   "Type a description and press Enter.")
        self._status(f"Indexed {summary.indexed:,} new, reused {summary.reused:,}, removed {summary.removed:,} "
                     f"in {summary.seconds:.1f} s", 8000)
        if summary.total == 0:
            self.show_message("No photos were found in this folder (JPEG, PNG, WebP, BMP, GIF, TIFF).", "warning")
        elif summary.skipped:
            self.show_message(f"{summary.skipped:,} of {summary.total:,} files could not be read and were "
                              "skipped.", "warning")

    def _on_index_failed(self, message: str) -> None:
        self.progress.hide()
        self.show_message(f"Indexing failed: {message}")

    def _add_recent(self, folder: str) -> None:
        recent = [f for f in self.recent_folders() if f != folder]
        self.qsettings.setValue("recent/folders", [folder] + recent[: MAX_RECENT - 1])
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

    # -- searching -----------------------------------------------------------------------------
    def _can_query(self) -> bool:
        if self.session.collection is not None:
            return True
        if self.session.folder and (self.session.loading_runtime or self.session.pending_folder):
            self.show_message("The model is still loading; try again in a moment.", "info")
        elif self.session.folder and self.session.runtime is not None:
            self.show_message("The folder is still being opened; try again in a moment.", "info")
        else:
            self.show_message("Open a photo folder before searching (File → Open folder…, Ctrl+O).")
        return False

    def search(self, text: str | None = None) -> None:
        text = (self.search_bar.text() if text is None else text).strip()
        if not text:
            self.clear_search()
            return
        if self._can_query():
            self.results_label.setText(f"Searching for “{text}”…")
            self.session.search_text(text, self.prefs.top_k)

    def find_captions(self, photo: str) -> None:
        if self._can_query():
            self.results_label.setText(f"Finding captions for {Path(photo).name}…")
            self.session.search_image(photo, self.prefs.top_k)

    def find_similar(self, photo: str) -> None:
        if self._can_query():
            self.results_label.setText(f"Finding photos similar to {Path(photo).name}…")
            self.session.similar(photo, self.prefs.top_k)

    def clear_search(self) -> None:
        self.search_bar.clear()
        self.model.clear()
        self.explanation.show_placeholder("Select a result to see why it matched.")
        if self.message_bar.level in ("info", "warning"):
            self.message_bar.dismiss()

    def search_for(self, text: str) -> None:
        """Put ``text`` in the search box and search for it."""
        self.search_bar.setText(text)
        self.search(text)

    def _on_results(self, direction: str, query: str, results: list[Result]) -> None:
        self._set_grid_mode(direction != IMAGE_TO_TEXT)
        self.model.set_results(results)
        self.explanation.show_placeholder("Select a result to see why it matched.")
        what = {TEXT_TO_IMAGE: f"photos for “{query}”", IMAGE_TO_TEXT: f"captions for {Path(query).name}",
                IMAGE_TO_IMAGE: f"photos similar to {Path(query).name}"}[direction]
        if not results:
            hint = " Indexing is still running; try again when it finishes." if self.session.indexing else ""
            self.results_label.setText(f"No {what}.")
            self.show_message(f"No results: nothing matched {what.split(' ', 1)[1]}.{hint}", "info")
            return
        if self.message_bar.level == "info":
            self.message_bar.dismiss()
        self.results_label.setText(f"{len(results):,} {what}")
        self.view.setFocus()

    # -- selection and explanation ---------------------------------------------------------------
    def _on_current_changed(self, current, _previous) -> None:
        result = current.data(ResultRole) if current.isValid() else None
        if result is None or self.session.collection is None:
            return
        self.explanation.show_placeholder("Computing the explanation…")
        self.session.explain(result)

    def _on_explanation(self, result: Result, explanation: Explanation, image: np.ndarray | None) -> None:
        if result.direction == IMAGE_TO_TEXT:
            title, query = result.caption or "", Path(result.query).name
        else:
            title = os.path.basename(result.path or "")
            query = result.query if result.direction == TEXT_TO_IMAGE else Path(result.query).name
        self.explanation.set_explanation(
            explanation, image, f"<b>{title}</b> — score {result.score:.3f} (step 1: {result.step1:.3f}) "
                                f"for “{query}”")

    def _on_activated(self, index) -> None:
        result = index.data(ResultRole)
        if result is not None and result.path:
            self.open_photo(result.path)

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

    def _context_menu(self, pos) -> None:
        index = self.view.indexAt(pos)
        if index.isValid():
            menu: QMenu = result_context_menu(self, self, index.data(ResultRole))
            menu.exec(self.view.viewport().mapToGlobal(pos))

    # -- export, settings, theme -----------------------------------------------------------------
    def export_results(self, path: str | None = None) -> bool:
        results = self.model.results()
        if not results:
            self.show_message("Nothing to export: run a search first.", "warning")
            return False
        if path is None:
            start = str(Path(self.session.folder or Path.home()) / "sfe-results.csv")
            path, _ = QFileDialog.getSaveFileName(self, "Export results", start, "CSV files (*.csv)")
            if not path:
                return False
        from ..export import write_csv
        from .workers import user_message

        try:
            write_csv(results, path)
        except Exception as exc:  # shown, never raised
            self.show_message(f"Could not export to {path}: {user_message(exc)}")
            return False
        self._status(f"Exported {len(results):,} results to {path}", 6000)
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
        if self.session.indexing:
            self._status("Stopping indexing…")
            self.progress.label.setText("Stopping… what was indexed is kept.")
            QApplication.processEvents()
        self.model.shutdown()
        self.session.shutdown()
        from .plot_canvas import render_pool

        render_pool().waitForDone(3000)
        self.qsettings.sync()
        super().closeEvent(event)
