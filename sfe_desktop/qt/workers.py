"""Run core functions off the UI thread.

Each long job is a plain core call wrapped in a :class:`QtWorker` (a ``QRunnable``) on a ``QThreadPool``;
a :class:`QtWorkerSignals` ``QObject`` carries its progress/result/error/finished signals back to the GUI
thread. Jobs that accept ``progress`` and ``cancel`` keywords get the progress signal's ``emit`` and a
``threading.Event`` that :meth:`QtWorker.cancel` sets. Thumbnails use :class:`QtThumbnailWorker`, one per
image, which emits a ``QImage`` (never a ``QPixmap``: those are built on the GUI thread).
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QSize, Qt, Signal
from PySide6.QtGui import QImage, QImageReader

from ..errors import Cancelled, SFEError

log = logging.getLogger(__name__)


def user_message(exc: BaseException) -> str:
    """One line a user can read for ``exc``: the core's own message for its typed errors."""
    if isinstance(exc, SFEError):
        return str(exc) or type(exc).__name__
    if isinstance(exc, MemoryError):
        return "Out of memory."
    if isinstance(exc, OSError):
        return f"{exc.strerror or type(exc).__name__}: {exc.filename or ''}".strip(": ")
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"Unexpected error ({type(exc).__name__}){': ' + first if first else ''}"


class QtWorkerSignals(QObject):
    """Signals of one :class:`QtWorker`; lives on the GUI thread so slots run there."""

    progress = Signal(object)
    result = Signal(object)
    error = Signal(str)
    cancelled = Signal()
    finished = Signal()


class QtWorker(QRunnable):
    """Call ``fn(*args, **kwargs)`` on a pool thread and report through :attr:`signals`.

    Parameters
    ----------
    fn
        The core function to run.
    cancellable
        Pass ``progress=`` (the progress signal's emit) and ``cancel=`` (a ``threading.Event``) to ``fn``.
    """

    def __init__(self, fn: Callable[..., Any], *args: Any, cancellable: bool = False, **kwargs: Any):
        super().__init__()
        self.setAutoDelete(False)  # the owner keeps a reference until ``finished``
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.signals = QtWorkerSignals()
        self.cancel_event = threading.Event()
        if cancellable:
            self.kwargs.update(progress=self.signals.progress.emit, cancel=self.cancel_event)

    def cancel(self) -> None:
        self.cancel_event.set()

    def run(self) -> None:  # noqa: D102 - QRunnable API
        try:
            value = self.fn(*self.args, **self.kwargs)
        except Cancelled:
            self.signals.cancelled.emit()
        except Exception as exc:  # every failure becomes a message, never a traceback in the UI
            if not isinstance(exc, SFEError):
                log.exception("worker %s failed", getattr(self.fn, "__name__", self.fn))
            self.signals.error.emit(user_message(exc))
        else:
            self.signals.result.emit(value)
        finally:
            self.signals.finished.emit()


class QtThumbnailSignals(QObject):
    loaded = Signal(str, QImage)


class QtThumbnailWorker(QRunnable):
    """Decode one image scaled to fit ``size`` (EXIF orientation applied) and emit it as a ``QImage``.

    ``resolve(path)`` (run here, off the UI thread) may name a cached thumbnail file to read instead.
    """

    def __init__(self, path: str, size: int, signals: QtThumbnailSignals,
                 resolve: Callable[[str], str | os.PathLike | None] | None = None):
        super().__init__()
        self.path, self.size, self.signals, self.resolve = path, size, signals, resolve

    def run(self) -> None:  # noqa: D102 - QRunnable API
        source = self.path
        if self.resolve is not None:
            try:
                source = str(self.resolve(self.path) or self.path)
            except Exception as exc:  # fall back to decoding the photo itself
                log.debug("no cached thumbnail for %s: %s", self.path, exc)
        reader = QImageReader(source)
        reader.setAutoTransform(True)
        src = reader.size()
        if src.isValid() and max(src.width(), src.height()) > self.size:
            reader.setScaledSize(src.scaled(QSize(self.size, self.size), Qt.KeepAspectRatio))
        image = reader.read()
        if not image.isNull() and max(image.width(), image.height()) > self.size:
            image = image.scaled(self.size, self.size, Qt.KeepAspectRatio, Qt.SmoothTransformation)
        self.signals.loaded.emit(self.path, image)  # a null image marks an unreadable file
