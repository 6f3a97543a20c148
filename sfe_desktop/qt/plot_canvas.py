"""QtPlotCanvas: a matplotlib ``Figure`` embedded with ``FigureCanvasQTAgg`` (no pyplot), drawn off the UI thread.

Building a figure and rendering it with Agg takes 100-300 ms on a slow CPU, too long for the UI thread.
:meth:`QtPlotCanvas.render_async` runs ``build(figure)`` and the Agg render on a one-thread pool (the
Figure is plain Python, not a Qt object); the UI thread only blits the finished buffer in ``paintEvent``.
Requests coalesce: while one render runs, only the latest pending ``build`` is kept.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Callable

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtWidgets import QSizePolicy

from .plots import DARK, LIGHT

log = logging.getLogger(__name__)
Build = Callable[[Figure], None]
# Off-thread rendering crashed CPython ("none_dealloc" in matplotlib's Agg draw_text) under a busy UI thread
# in benchmarks/bench_ui_stall.py; until that is understood figures render on the UI thread by default.
ASYNC_RENDER = os.environ.get("SFE_ASYNC_PLOTS", "") == "1"
_POOL: QThreadPool | None = None


def render_pool() -> QThreadPool:
    """The single thread that builds and renders every figure (matplotlib is not thread-safe per figure)."""
    global _POOL
    if _POOL is None:
        _POOL = QThreadPool()
        _POOL.setMaxThreadCount(1)
    return _POOL


class _RenderSignals(QObject):
    done = Signal()


class _RenderJob(QRunnable):
    def __init__(self, canvas: "QtPlotCanvas", build: Build | None):
        super().__init__()
        self.canvas, self.build = canvas, build
        self.done = canvas._render_signals.done  # keep the bound signal: emitted after the canvas may be gone

    def run(self) -> None:  # noqa: D102 - QRunnable API
        try:
            canvas = self.canvas
            with canvas.figure_lock:
                if self.build is not None:
                    self.build(canvas.figure)
                # FigureCanvasAgg.draw without its super().draw(), which would touch the widget here
                canvas.renderer = canvas.get_renderer()
                canvas.renderer.clear()
                canvas.figure.draw(canvas.renderer)
        except Exception:  # a plotting bug must not take the window down
            log.exception("rendering a figure failed")
        finally:
            try:
                self.done.emit()
            except RuntimeError:  # the canvas was deleted (window closed) while rendering
                pass


class QtPlotCanvas(FigureCanvasQTAgg):
    """A canvas owning one constrained-layout ``Figure``; :attr:`theme` follows the app palette."""

    rendered = Signal()

    def __init__(self, parent=None, width: float = 6.0, height: float = 4.5):
        self.figure = Figure(figsize=(width, height), layout="constrained")
        super().__init__(self.figure)
        self.setParent(parent)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMinimumSize(240, 200)
        self.theme = LIGHT
        self.figure_lock = threading.Lock()
        self._render_signals = _RenderSignals(self)
        self._render_signals.done.connect(self._on_rendered)
        self._busy = False
        self._pending: list[Build | None] = []

    def set_dark(self, dark: bool) -> None:
        self.theme = DARK if dark else LIGHT

    # -- asynchronous drawing ---------------------------------------------------------------------
    def render_async(self, build: Build | None = None) -> None:
        """Run ``build(figure)`` (None: just re-render) and the Agg render off the UI thread."""
        if self._pending and self._pending[0] is not None and build is None:
            return  # a rebuild is queued anyway
        self._pending = [build]
        self._kick()

    def _kick(self) -> None:
        if self._busy or not self._pending:
            return
        build = self._pending.pop()
        self._busy = True
        job = _RenderJob(self, build)
        if ASYNC_RENDER:
            render_pool().start(job)
        else:
            job.run()  # same code on the UI thread; ``done`` is delivered directly

    def _on_rendered(self) -> None:
        self._busy = False
        self.update()
        if self._pending:
            self._kick()
        else:
            self.rendered.emit()

    def idle(self) -> bool:
        return not self._busy and not self._pending

    def draw(self) -> None:
        """Matplotlib's draw (after ``draw_idle``, a resize or a first paint): rendered off the UI thread."""
        self.render_async(None)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        if not self.figure_lock.acquire(blocking=False):
            return  # a render is running; its completion repaints
        try:
            super().paintEvent(event)
        finally:
            self.figure_lock.release()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        with self.figure_lock:  # never resize the figure under a running render
            super().resizeEvent(event)

    def has_artists(self) -> bool:
        """True once something from data was drawn (images, patches, lines or collections)."""
        return any(ax.images or ax.patches or ax.lines or ax.collections for ax in self.figure.axes)
