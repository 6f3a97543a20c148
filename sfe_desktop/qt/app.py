"""Entry point of the desktop app: ``sfe-desktop [FOLDER] [--search TEXT] [--checkpoint C] [--device D]``.

Arguments, the folder and the X11 libraries are checked before Qt (and long before torch) loads, so each
problem is one line on stderr at once. SIGTERM and SIGINT close the window as the user would: indexing stops
after its batch, the render process and multiprocessing's resource tracker end with the app.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from .. import __version__
from ..memory import tune_allocator
from .startup import folder_problem, platform_problem

APP_NAME = "SFE Explorer"
ORG_NAME = "SFE"
log = logging.getLogger(__name__)


def resources_dir() -> Path:
    """``resources/`` next to the package, or inside a PyInstaller bundle."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sfe-desktop", description=f"Open the {APP_NAME} window.")
    parser.add_argument("folder", nargs="?", help="photo folder to open (indexed in the background)")
    parser.add_argument("--search", metavar="TEXT", help="search FOLDER for TEXT as soon as it can be searched")
    parser.add_argument("--checkpoint", help="checkpoint folder (default: the bundled model)")
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], help="where the model runs")
    parser.add_argument("--version", action="version", version=f"sfe-desktop {__version__}")
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["gui"]:
        args = args[1:]
    ns = parser.parse_args(args)
    if ns.folder:
        ns.folder = os.path.abspath(os.path.expanduser(ns.folder))
        problem = folder_problem(ns.folder)
        if problem:
            parser.error(problem)
    if ns.search is not None and not ns.folder:
        parser.error("--search needs a FOLDER to search")
    if ns.checkpoint and not os.path.isdir(os.path.expanduser(ns.checkpoint)):
        parser.error(f"the checkpoint folder “{ns.checkpoint}” does not exist")
    return ns


class SignalBridge:
    """Turns SIGTERM/SIGINT into a call of ``on_signal(signum)`` on the Qt event loop.

    A Python signal handler only runs when the interpreter gets control, which a Qt event loop waiting for
    events never gives it; the wake-up fd (written by the C-level handler) wakes the loop through a
    ``QSocketNotifier``, and the notifier's slot runs the handler's request."""

    def __init__(self, on_signal):
        from PySide6.QtCore import QSocketNotifier

        self.on_signal = on_signal
        self.received: int | None = None
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)
        self._old_fd = signal.set_wakeup_fd(self._write.fileno())
        self._old = {s: signal.signal(s, self._handler) for s in (signal.SIGTERM, signal.SIGINT)}
        self.notifier = QSocketNotifier(self._read.fileno(), QSocketNotifier.Read)
        self.notifier.activated.connect(self._wake)

    def _handler(self, signum, _frame) -> None:
        self.received = signum

    def _wake(self, *_args) -> None:
        try:
            self._read.recv(64)
        except OSError:
            pass
        if self.received is not None:
            self.on_signal(self.received)

    def close(self) -> None:
        self.notifier.setEnabled(False)
        signal.set_wakeup_fd(self._old_fd)
        for s, handler in self._old.items():
            signal.signal(s, handler)
        self._read.close()
        self._write.close()


def main(argv: list[str] | None = None) -> int:
    """Show the main window (in well under 2 s: the model loads in the background) and run the event loop."""
    args = parse_args(argv)
    problem = platform_problem()
    if problem:
        print(f"error: the desktop app cannot start: {problem}", file=sys.stderr)
        return 1
    tune_allocator()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from PySide6.QtCore import QCoreApplication, Qt
    from PySide6.QtGui import QGuiApplication, QIcon
    from PySide6.QtWidgets import QApplication

    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    QCoreApplication.setOrganizationName(ORG_NAME)
    QCoreApplication.setApplicationName(APP_NAME)
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "sfe-desktop"])
    app.setApplicationDisplayName(APP_NAME)
    app.setDesktopFileName("sfe-explorer")
    icon = QIcon(str(resources_dir() / "icon.png"))
    app.setWindowIcon(icon)

    from .main_window import QtMainWindow

    window = QtMainWindow(checkpoint=args.checkpoint, device=args.device, icon=icon)
    window.set_theme(window.theme)
    window.show()
    log.info("window shown (platform %s, display %s, pid %d)", QGuiApplication.platformName(),
             os.environ.get("DISPLAY", "-") if QGuiApplication.platformName() == "xcb" else "-", os.getpid())

    def on_signal(signum: int) -> None:
        log.info("%s received: closing", signal.Signals(signum).name)
        window.close()
        app.quit()

    bridge = SignalBridge(on_signal)
    if args.folder:
        window.open_folder(args.folder)
        if args.search:
            window.search_for(args.search)
    try:
        status = int(app.exec())
    finally:
        bridge.close()
        from .plot_canvas import shutdown_render_process

        shutdown_render_process()
    return 128 + bridge.received if bridge.received is not None else status


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
