"""Longest UI-thread stall while the real window indexes a few hundred photos and searches.

A 5 ms QTimer heartbeat on the GUI thread records the largest gap between ticks while the window
(with the tiny random model, or ``--checkpoint``) opens a folder of generated images, indexes it,
runs searches, selects results (explanations) and loads thumbnails. Target: under 100 ms.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_ui_stall.py [--photos 300] [--checkpoint DIR]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "qt"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_allocator_flag, setup_allocator  # noqa: E402


class Heartbeat:
    """Records the gaps between ticks of a GUI-thread timer, labelled by the current phase."""

    def __init__(self, interval_ms: int = 5):
        from PySide6.QtCore import QTimer

        self.interval = interval_ms / 1000
        self.phase = "start"
        self.worst: dict[str, float] = {}
        self.last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.tick)

    def tick(self) -> None:
        now = time.perf_counter()
        gap = now - self.last - self.interval
        self.last = now
        self.worst[self.phase] = max(self.worst.get(self.phase, 0.0), gap)

    def enter(self, phase: str) -> None:
        self.tick()
        self.phase = phase


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=300)
    parser.add_argument("--checkpoint", help="real checkpoint folder (default: tiny random model)")
    parser.add_argument("--device", default="cpu")
    add_allocator_flag(parser)
    args = parser.parse_args()
    setup_allocator(args)

    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtWidgets import QApplication
    from qt_helpers import make_photos

    app = QApplication.instance() or QApplication([])
    from sfe_desktop.qt.main_window import QtMainWindow

    if args.checkpoint:
        from sfe_desktop.model.runtime import SFERuntime

        def factory(checkpoint, device):
            return SFERuntime.load(args.checkpoint, args.device)
    else:
        from sfe_desktop.model.runtime import tiny_runtime

        def factory(checkpoint, device):
            return tiny_runtime()

    def wait(signal, timeout_s: float = 600):
        loop = QEventLoop()
        box = []
        signal.connect(lambda *a: (box.append(a), loop.quit()))
        QTimer.singleShot(int(timeout_s * 1000), loop.quit)
        loop.exec()
        return box[0] if box else None

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        make_photos(folder, args.photos, size=(320, 240))
        beat = Heartbeat()
        beat.timer.start()
        t0 = time.perf_counter()
        window = QtMainWindow(QSettings(str(Path(tmp) / "s.ini"), QSettings.IniFormat), runtime_factory=factory)
        window.url_opener = lambda url: True
        window.show()
        app.processEvents()
        shown = time.perf_counter() - t0
        beat.enter("model load")
        wait(window.session.runtime_loaded)
        beat.enter("indexing")
        t1 = time.perf_counter()
        window.open_folder(str(folder))
        summary = wait(window.session.index_finished)[0]
        index_s = time.perf_counter() - t1
        beat.enter("search + explain + thumbnails")
        for query in ["a red dog", "a blue boat near a tree", "black cat", "yellow car", "green house"]:
            window.search_bar.setText(query)
            window.search()
            wait(window.session.results_ready)
            window.view.setCurrentIndex(window.model.index(0))
            wait(window.session.explanation_ready)
            for tab in range(3):
                window.explanation.tabs.setCurrentIndex(tab)
                app.processEvents()
        deadline = time.perf_counter() + 5
        while (window.model.thumbnails_pending() or not window.explanation.idle()) and time.perf_counter() < deadline:
            app.processEvents()
        beat.enter("done")
        from sfe_desktop.qt import plot_canvas

        view = window.explanation.tabs.currentWidget().plot  # hidden tabs render only when shown
        where = "the render process" if plot_canvas._PROCESS is not None else "this process (render thread)"
        print(f"last explanation figure shown: {view.result is not None}, drawn in {where}")
        window.close()
        beat.timer.stop()

    print(f"window shown after {shown * 1000:.0f} ms; indexed {summary.indexed} photos in {index_s:.1f} s")
    for phase, gap in beat.worst.items():
        if phase not in ("start", "done"):
            print(f"longest UI-thread stall during {phase}: {gap * 1000:.0f} ms")
    worst = max(v for k, v in beat.worst.items() if k in ("indexing", "search + explain + thumbnails"))
    print(f"UI stall (indexing + searching): {worst * 1000:.0f} ms (target < 100 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
