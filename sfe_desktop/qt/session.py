"""QtSession: the bridge between the core (runtime, Collection) and the window.

It owns the model runtime and the open collection, runs every core call as a
:class:`~sfe_desktop.qt.workers.QtWorker` on its thread pool and reports back through signals on the GUI
thread. Stale answers (a search superseded by a newer one) are dropped by generation counters.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
from PySide6.QtCore import QObject, QThreadPool, Signal
from PySide6.QtGui import QImage

from ..search.types import IMAGE_TO_IMAGE, IMAGE_TO_TEXT, TEXT_TO_IMAGE, Result
from .workers import QtWorker

if TYPE_CHECKING:  # the modules themselves load torch: imported where they are used, off the window's start
    from ..explanation import Comparison, Explanation
    from ..model.runtime import SFERuntime
    from ..search import Collection

log = logging.getLogger(__name__)
RuntimeFactory = Callable[[str | None, str], "SFERuntime"]
PREVIEW_SIZE = 768  # longest side of the photo under the attention heatmap


def default_runtime_factory(checkpoint: str | None, device: str) -> SFERuntime:
    from ..model.runtime import SFERuntime  # imported here: torch must not slow the window's start

    return SFERuntime.load(checkpoint, device=device)


def _load_runtime(factory: RuntimeFactory, checkpoint: str | None, device: str) -> tuple[SFERuntime, bool]:
    runtime = factory(checkpoint, device)
    import torch

    return runtime, bool(torch.cuda.is_available())


def _open_collection(folder: str, runtime: SFERuntime) -> Collection:
    from ..search import Collection

    return Collection.open(folder, runtime)


def _explain(collection: Collection, result: Result) -> tuple[Result, Explanation, np.ndarray | None]:
    from ..data.images import load_image
    from ..errors import ImageReadError

    explanation = collection.explain(result)
    photo = explanation.photo  # the image side of the pair: the hit, or the query photo
    image = None
    if photo:
        try:
            im = load_image(photo, min_side=PREVIEW_SIZE)
            im.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE))
            image = np.asarray(im)
        except ImageReadError as exc:  # the heatmap is still shown, over a blank
            log.info("no preview for %s: %s", photo, exc)
    return result, explanation, image


def _index(collection: Collection, progress=None, cancel=None, reencode: bool = False):
    """One index run, and the files it could not read (the window names them)."""
    summary = collection.index(progress=progress, cancel=cancel, reencode=reencode)
    return summary, collection.skipped()


def _compare(collection: Collection, result: Result) -> tuple[Result, tuple[QImage, QImage], Comparison]:
    """The two photos of a similar-photos result, as preview images, and why they are similar."""
    from PySide6.QtCore import QSize, Qt
    from PySide6.QtGui import QImageReader

    images = []
    for path in (result.query, result.path or ""):
        reader = QImageReader(path)
        reader.setAutoTransform(True)
        size = reader.size()
        if size.isValid() and max(size.width(), size.height()) > PREVIEW_SIZE:
            reader.setScaledSize(size.scaled(QSize(PREVIEW_SIZE, PREVIEW_SIZE), Qt.KeepAspectRatio))
        images.append(reader.read())
    return result, (images[0], images[1]), collection.compare(result)


class QtSession(QObject):
    """Owns the runtime and collection; every long call runs on :attr:`pool`."""

    runtime_loaded = Signal(object)
    runtime_failed = Signal(str)
    collection_opened = Signal(str)
    collection_failed = Signal(str)
    index_progress = Signal(object)
    index_finished = Signal(object)        # IndexSummary, or None when cancelled by an exception
    index_failed = Signal(str)
    results_ready = Signal(str, str, list)  # direction, query, results
    search_failed = Signal(str)
    explanation_ready = Signal(object, object, object)  # Result, Explanation, image array or None
    explanation_failed = Signal(str)
    similar_ready = Signal(object, object, object)  # Result (image->image), (query, result) QImages, Comparison
    library_ready = Signal(list)            # every indexed photo (Results of direction "library")
    library_failed = Signal(str)

    def __init__(self, runtime_factory: RuntimeFactory | None = None, parent=None):
        super().__init__(parent)
        self.runtime_factory = runtime_factory or default_runtime_factory
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(4)
        self.runtime: SFERuntime | None = None
        self.cuda_available: bool | None = None
        self.loading_runtime = False
        self.collection: Collection | None = None
        self.folder: str | None = None
        self.pending_folder: str | None = None
        self._index_worker: QtWorker | None = None
        self._workers: set[QtWorker] = set()
        self._generation = {"runtime": 0, "search": 0, "explain": 0, "open": 0, "library": 0}
        self.skipped: list[tuple[str, str]] = []  # (path in the folder, reason) after the last index run

    # -- plumbing ------------------------------------------------------------------------------
    def _run(self, kind: str | None, fn, *args, on_result=None, on_error=None, cancellable=False,
             on_progress=None, **kwargs) -> QtWorker:
        worker = QtWorker(fn, *args, cancellable=cancellable, **kwargs)
        gen = None
        if kind:
            self._generation[kind] += 1
            gen = self._generation[kind]

        def current() -> bool:
            return gen is None or self._generation[kind] == gen

        if on_result:
            worker.signals.result.connect(lambda value: current() and on_result(value))
        if on_error:
            worker.signals.error.connect(lambda msg: current() and on_error(msg))
        if on_progress:
            worker.signals.progress.connect(on_progress)
        worker.signals.finished.connect(lambda: self._workers.discard(worker))
        self._workers.add(worker)
        self.pool.start(worker)
        return worker

    @property
    def indexing(self) -> bool:
        return self._index_worker is not None

    def busy(self) -> bool:
        return bool(self._workers)

    # -- model ---------------------------------------------------------------------------------
    def load_runtime(self, checkpoint: str | None, device: str) -> None:
        """Load (or reload) the model in the background; an open folder is reopened with it."""
        self.cancel_indexing()
        if self.folder and not self.pending_folder:
            self.pending_folder = self.folder
        self._drop_collection()
        self.runtime = None
        self.loading_runtime = True
        self._run("runtime", _load_runtime, self.runtime_factory, checkpoint, device,
                  on_result=self._on_runtime, on_error=self._on_runtime_error)

    def _on_runtime(self, value: tuple[SFERuntime, bool]) -> None:
        self.runtime, self.cuda_available = value
        self.loading_runtime = False
        self.runtime_loaded.emit(self.runtime)
        if self.pending_folder:
            folder, self.pending_folder = self.pending_folder, None
            self.open_folder(folder)

    def _on_runtime_error(self, message: str) -> None:
        self.loading_runtime = False
        self.runtime_failed.emit(message)

    # -- collection ----------------------------------------------------------------------------
    def open_folder(self, folder: str) -> None:
        """Open ``folder`` and index it; waits for the model when it is still loading."""
        self.cancel_indexing()
        self._drop_collection()
        self.folder = folder
        if self.runtime is None:
            self.pending_folder = folder
            return
        self._run("open", _open_collection, folder, self.runtime,
                  on_result=self._on_opened, on_error=self.collection_failed.emit)

    def _on_opened(self, collection: Collection) -> None:
        self.collection = collection
        self.collection_opened.emit(self.folder or "")
        if not getattr(collection, "read_only", False):  # a read-only index is searched as it is
            self.start_indexing()

    def start_indexing(self, reencode: bool = False) -> None:
        """Index the open folder in the background. An index built with another model (the app updated its
        bundled one, or Settings chose another) cannot be searched: it is encoded again with this one."""
        if self.collection is None or self._index_worker is not None:
            return
        coll = self.collection
        reencode = reencode or bool(coll.stale)
        worker = self._run(None, _index, coll, cancellable=True, reencode=reencode,
                           on_progress=self.index_progress.emit, on_error=self.index_failed.emit,
                           on_result=lambda value: self._on_indexed(coll, *value))
        worker.signals.cancelled.connect(lambda: self.index_finished.emit(None))
        worker.signals.finished.connect(lambda: self._index_done(worker))
        self._index_worker = worker

    def _on_indexed(self, collection: Collection, summary, skipped: list[tuple[str, str]]) -> None:
        self.skipped = skipped
        self.index_finished.emit(summary)
        if collection is self.collection:  # what photo -> caption search ranks: ready before the first one
            self._run(None, collection.prepare_captions, cancellable=True,
                      on_error=lambda msg: log.info("captions: %s", msg))

    def _index_done(self, worker: QtWorker) -> None:
        if self._index_worker is worker:
            self._index_worker = None

    def cancel_indexing(self) -> None:
        if self._index_worker is not None:
            self._index_worker.cancel()

    def _drop_collection(self) -> None:
        """Forget the open collection; it is closed once its running jobs have finished."""
        coll, self.collection = self.collection, None
        for kind in ("open", "search", "explain", "library"):
            self._generation[kind] += 1
        if coll is None:
            return
        worker, self._index_worker = self._index_worker, None
        if worker is not None:
            worker.cancel()
            worker.signals.finished.connect(lambda: _close_quietly(coll))
        else:
            _close_quietly(coll)

    # -- queries -------------------------------------------------------------------------------
    def search_text(self, query: str, top: int) -> None:
        self._query(self.collection.search_text, TEXT_TO_IMAGE, query, query, top=top)

    def search_image(self, photo: str, top: int) -> None:
        self._query(self.collection.search_image, IMAGE_TO_TEXT, photo, photo, top=top)

    def similar(self, photo: str, top: int) -> None:
        self._query(self.collection.similar, IMAGE_TO_IMAGE, photo, photo, top=top)

    def _query(self, fn: Callable[..., list[Result]], direction: str, label: str, *args, **kwargs) -> None:
        self._generation["explain"] += 1
        self._run("search", fn, *args, **kwargs, on_error=self.search_failed.emit,
                  on_result=lambda results: self.results_ready.emit(direction, label, list(results)))

    def explain(self, result: Result) -> None:
        if result.direction == IMAGE_TO_IMAGE:
            self._run("explain", _compare, self.collection, result, on_error=self.explanation_failed.emit,
                      on_result=lambda value: self.similar_ready.emit(*value))
            return
        self._run("explain", _explain, self.collection, result, on_error=self.explanation_failed.emit,
                  on_result=lambda value: self.explanation_ready.emit(*value))

    def load_library(self) -> None:
        """Every indexed photo of the open folder, in the background (:attr:`library_ready`)."""
        if self.collection is not None:
            self._run("library", self.collection.library, on_result=self.library_ready.emit,
                      on_error=self.library_failed.emit)

    # -- shutdown ------------------------------------------------------------------------------
    def shutdown(self, timeout_ms: int = 15000) -> bool:
        """Cancel every job, wait for the pool (the index keeps what was committed), close the collection."""
        for worker in list(self._workers):
            worker.cancel()
        for key in self._generation:
            self._generation[key] += 1
        done = self.pool.waitForDone(timeout_ms)
        if done:
            self._workers.clear()
            self._index_worker = None
        if self.collection is not None:
            _close_quietly(self.collection)
            self.collection = None
        return done


def _close_quietly(collection: Collection) -> None:
    try:
        collection.close()
    except Exception:  # closing must never take the app down
        log.exception("closing the collection failed")
