"""QtPlotView: shows a matplotlib figure rendered off the UI thread and outside the app's process.

Building a figure and drawing it with Agg takes 100-300 ms on a slow CPU, too long for the UI thread. A view
is given a *renderer*, ``renderer(width_px, height_px, dpi) -> plots.Rendered`` (pure matplotlib on a fresh
``Figure`` + ``FigureCanvasAgg``, :mod:`sfe_desktop.explanation.plots`), a picklable callable such as a
``functools.partial`` of a ``plots.render_*`` function. It runs in the render process (:func:`render_process`), waited for by :func:`render_pool`'s one thread,
which hands back ``QImage`` layers that ``paintEvent`` only blits. The UI thread never draws a figure.

Why a process: matplotlib is Python and NumPy code that takes and releases the GIL thousands of times per
figure. CPython 3.11 hands the GIL to a waiting thread only when no other switch happened for 5 ms, so a render
thread that keeps re-taking it starved the UI thread for the whole render (150-175 ms stalls measured by
``benchmarks/bench_ui_stall.py``, 15 ms without rendering). The child process has its own GIL. If it cannot be
started (or ``SFE_RENDER_PROCESS=0``), figures are drawn on the render thread as before.

* Lazy: a view renders only while visible (a hidden tab renders when it is shown).
* Coalescing: while one render runs, only the latest request of a view is kept.
* Resizing shows the last image scaled and re-renders at the new size after a short pause.
* Layers: ``rgba`` is drawn, then ``overlay`` (if any) with :attr:`QtPlotView.overlay_opacity`, so an opacity
  change is a repaint, not a render.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable

import numpy as np
from PySide6.QtCore import QObject, QPoint, QPointF, QRectF, QRunnable, QSize, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget
from shiboken6 import isValid

from ..explanation import plots
from ..explanation.plots import DARK, LIGHT, Rendered

log = logging.getLogger(__name__)
Renderer = Callable[[int, int, float], Rendered]
RESIZE_PAUSE_MS = 150
_POOL: QThreadPool | None = None
_DISPATCH: "_Dispatcher | None" = None
_PROCESS: ProcessPoolExecutor | None = None
_PROCESS_FAILURES = 0
MAX_PROCESS_FAILURES = 2  # then draw on the render thread for the rest of the session
RENDER_TIMEOUT_S = 120.0  # a figure takes well under a second; a child this late is stuck


def render_pool() -> QThreadPool:
    """The single thread that builds and renders every figure."""
    global _POOL
    if _POOL is None:
        _POOL = QThreadPool()
        _POOL.setMaxThreadCount(1)
    return _POOL


def render_process() -> ProcessPoolExecutor | None:
    """The one child process that draws figures (started, and warmed up, on first call); None when figures
    are drawn in this process instead."""
    global _PROCESS
    if _PROCESS is None and _PROCESS_FAILURES < MAX_PROCESS_FAILURES \
            and os.environ.get("SFE_RENDER_PROCESS", "1").strip() != "0":
        try:
            _PROCESS = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            _PROCESS.submit(plots.warm_up)
        except (OSError, RuntimeError) as exc:
            _process_failed(exc)
    return _PROCESS


def _process_failed(exc: BaseException) -> None:
    global _PROCESS, _PROCESS_FAILURES
    _PROCESS_FAILURES += 1
    log.warning("the render process failed (%s); %s", exc,
                "drawing on a thread from now on" if _PROCESS_FAILURES >= MAX_PROCESS_FAILURES else "restarting it")
    if _PROCESS is not None:
        for process in list(getattr(_PROCESS, "_processes", {}).values()):  # a hung child would linger
            process.kill()
        _PROCESS.shutdown(wait=False, cancel_futures=True)
    _PROCESS = None


def shutdown_render_process(timeout_s: float = 3.0) -> None:
    """Stop the render process (the app calls this when it quits, also on SIGTERM): the child gets ``timeout_s``
    to finish its figure, then it is terminated, then killed; then the executor closes its queues.

    multiprocessing's resource tracker is left to end by itself: it exits when the last holder of its pipe does,
    and the render child, which inherited the pipe, was what kept it alive after the app had gone. Stopping it
    here, before the queues' semaphores are finalized at exit, made it unlink them as leaked, and the app's own
    finalizers then failed on the missing semaphores."""
    global _PROCESS
    if _PROCESS is None:
        return
    executor, _PROCESS = _PROCESS, None
    children = list(getattr(executor, "_processes", {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for child in children:
        child.join(timeout_s)
        if child.is_alive():
            child.terminate()
            child.join(1.0)
        if child.is_alive():
            child.kill()
            child.join(1.0)
    executor.shutdown(wait=True)  # the children are gone: its manager thread ends and closes the queues


class RenderFailed(RuntimeError):
    """The render process stopped (crashed, or hung past RENDER_TIMEOUT_S) while drawing a figure."""


def render(renderer: Renderer, width_px: int, height_px: int, dpi: float) -> Rendered:
    """``plots.detached(renderer, ...)`` in the render process if there is one, else here.

    A plotting error raised by the renderer propagates. If the child dies or hangs on this figure,
    :class:`RenderFailed` is raised (the figure is *not* retried in this process, where the same crash would take
    the app down) and the next call starts a new child."""
    pool = render_process()
    if pool is None:
        return plots.detached(renderer, width_px, height_px, dpi)
    try:
        future: Future = pool.submit(plots.detached, renderer, width_px, height_px, dpi)
    except RuntimeError as exc:  # shut down, or broken before this call: try a new child (or the thread)
        _process_failed(exc)
        return render(renderer, width_px, height_px, dpi)
    try:
        return future.result(timeout=RENDER_TIMEOUT_S)
    except (BrokenProcessPool, TimeoutError) as exc:
        _process_failed(exc)
        raise RenderFailed(f"the render process stopped while drawing this figure ({type(exc).__name__})") from exc


def to_qimage(rgba: np.ndarray, dpr: float = 1.0) -> QImage:
    """An (H, W, 4) uint8 RGBA array as a QImage that owns its pixels (safe to build on any thread)."""
    rgba = np.ascontiguousarray(rgba, dtype=np.uint8)
    h, w = rgba.shape[:2]
    image = QImage(rgba.data, w, h, 4 * w, QImage.Format_RGBA8888).copy()
    image.setDevicePixelRatio(dpr)
    return image


class _Dispatcher(QObject):
    """Lives on the GUI thread; delivers finished renders to their view if it still exists."""

    done = Signal(object)

    def __init__(self):
        super().__init__()
        self.done.connect(self._deliver)

    @staticmethod
    def _deliver(payload) -> None:
        view, generation, rendered, layers = payload
        if isValid(view):
            view._on_rendered(generation, rendered, layers)


def _dispatcher() -> _Dispatcher:
    global _DISPATCH
    if _DISPATCH is None:  # first called from a view's constructor, on the GUI thread
        _DISPATCH = _Dispatcher()
    return _DISPATCH


class _RenderJob(QRunnable):
    def __init__(self, view: "QtPlotView", generation: int, renderer: Renderer, size: QSize, dpr: float):
        super().__init__()
        self.view, self.generation, self.renderer = view, generation, renderer
        self.width, self.height, self.dpr = size.width(), size.height(), dpr
        self.done = _dispatcher().done

    def run(self) -> None:  # noqa: D102 - QRunnable API
        rendered, layers = None, None
        try:
            rendered = render(self.renderer, round(self.width * self.dpr), round(self.height * self.dpr),
                              100.0 * self.dpr)
            layers = (to_qimage(rendered.rgba, self.dpr),
                      None if rendered.overlay is None else to_qimage(rendered.overlay, self.dpr))
        except Exception:  # a plotting bug must not take the window down
            log.exception("rendering a figure failed")
        self.done.emit((self.view, self.generation, rendered, layers))


class QtPlotView(QWidget):
    """Shows what a renderer drew; :attr:`clicked` gives a press position in image pixels."""

    rendered = Signal()
    clicked = Signal(QPointF)
    hovered = Signal(QPointF, QPoint)  # image pixel under the pointer, and the pointer's global position

    def __init__(self, parent=None):
        super().__init__(parent)
        _dispatcher()
        render_process()  # start it now: the first figure is asked for a few seconds later at the earliest
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMinimumSize(240, 200)
        self.theme = LIGHT
        self.overlay_opacity = 0.5
        self.result: Rendered | None = None      # the last finished render
        self.failed = False                      # the last render of the current renderer failed
        self._layers: tuple[QImage, QImage | None] | None = None
        self._renderer: Renderer | None = None
        self._stale = False
        self._busy = False
        self._generation = 0
        self._rendered_size = QSize()
        self._resize_timer = QTimer(self)
        self._resize_timer.setSingleShot(True)
        self._resize_timer.setInterval(RESIZE_PAUSE_MS)
        self._resize_timer.timeout.connect(self._kick)

    def set_dark(self, dark: bool) -> None:
        self.theme = DARK if dark else LIGHT

    # -- requests ----------------------------------------------------------------------------------
    def set_renderer(self, renderer: Renderer, keep_image: bool = False) -> None:
        """Draw with ``renderer`` from now on; renders now if visible, else when shown.

        ``keep_image``: show the current image until the new one is ready (same data, another word or
        theme); otherwise *Drawing…* replaces it (another explanation must not show the old one)."""
        self._renderer = renderer
        self.failed = False
        if not keep_image:
            self._layers = None
            self.update()
        self._generation += 1
        self._stale = True
        self._kick()

    def clear(self) -> None:
        self._renderer, self.result, self._layers, self._stale = None, None, None, False
        self._generation += 1
        self.update()

    def _kick(self) -> None:
        if self._busy or not self._stale or self._renderer is None or not self.isVisible():
            return
        self._resize_timer.stop()
        self._stale = False
        self._busy = True
        size = self.size()
        self._rendered_size = size
        job = _RenderJob(self, self._generation, self._renderer, size, self.devicePixelRatioF())
        render_pool().start(job)

    def _on_rendered(self, generation: int, rendered: Rendered | None, layers) -> None:
        self._busy = False
        if generation == self._generation:
            self.failed = rendered is None
            if rendered is not None:
                self.result, self._layers = rendered, layers
            self.update()
        if self.size() != self._rendered_size and self._renderer is not None:
            self._stale = True
        self._kick()
        if self.idle():
            self.rendered.emit()

    def idle(self) -> bool:
        """True when nothing is being rendered or waiting to be (a hidden, stale view waits for nothing)."""
        waiting = self._stale and self._renderer is not None and self.isVisible()
        return not self._busy and not waiting

    def set_overlay_opacity(self, opacity: float) -> None:
        self.overlay_opacity = float(opacity)
        self.update()

    # -- geometry ------------------------------------------------------------------------------------
    def image_rect(self) -> QRectF:
        """Where the rendered image is drawn (scaled to fit, centred), in widget coordinates."""
        if not self._layers:
            return QRectF()
        image = self._layers[0]
        iw, ih = image.width() / image.devicePixelRatio(), image.height() / image.devicePixelRatio()
        scale = min(self.width() / iw, self.height() / ih) if iw and ih else 1.0
        w, h = iw * scale, ih * scale
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def image_to_widget(self, x: float, y: float) -> QPointF:
        """Image pixel (origin top left) -> widget point."""
        rect = self.image_rect()
        image = self._layers[0]
        return QPointF(rect.x() + x * rect.width() / image.width(), rect.y() + y * rect.height() / image.height())

    def widget_to_image(self, point: QPointF) -> QPointF:
        rect = self.image_rect()
        image = self._layers[0]
        return QPointF((point.x() - rect.x()) * image.width() / rect.width(),
                       (point.y() - rect.y()) * image.height() / rect.height())

    def pixel_scale(self) -> float:
        """Image pixels per widget pixel (1.0 while the image is shown at its rendered size)."""
        rect = self.image_rect()
        return self._layers[0].width() / rect.width() if self._layers and rect.width() else 1.0

    # -- Qt events -------------------------------------------------------------------------------------
    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(self.theme["bg"]))
        if not self._layers:
            painter.setPen(Qt.gray)
            text = "Could not draw this view (the log has details)." if self.failed else "Drawing…"
            painter.drawText(self.rect(), Qt.AlignCenter, text if self._renderer else "")
            painter.end()
            return
        base, overlay = self._layers
        rect = self.image_rect()
        exact = abs(rect.width() * base.devicePixelRatio() - base.width()) < 1
        painter.setRenderHint(QPainter.SmoothPixmapTransform, not exact)
        painter.drawImage(rect, base)
        if overlay is not None and self.overlay_opacity > 0:
            painter.setOpacity(self.overlay_opacity)
            painter.drawImage(rect, overlay)
        painter.end()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        if self._renderer is not None and self.size() != self._rendered_size:
            self._stale = True
            if not self._busy and self.isVisible():
                self._resize_timer.start()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        self._kick()  # a tab shown with a stale figure renders now

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt API
        if self._layers and self.image_rect().contains(event.position()):
            self.hovered.emit(self.widget_to_image(event.position()), event.globalPosition().toPoint())
        super().mouseMoveEvent(event)

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt API
        if self._layers and event.button() == Qt.LeftButton:
            self.clicked.emit(self.widget_to_image(event.position()))
        super().mousePressEvent(event)
