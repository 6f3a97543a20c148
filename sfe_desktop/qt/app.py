"""Entry point of the desktop app: ``sfe-desktop`` or ``sfe-desktop gui [DIR] [--checkpoint C] [--device D]``."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..memory import tune_allocator

APP_NAME = "SFE Explorer"
ORG_NAME = "SFE"


def resources_dir() -> Path:
    """``resources/`` next to the package, or inside a PyInstaller bundle."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sfe-desktop gui", description=f"Open the {APP_NAME} window.")
    parser.add_argument("folder", nargs="?", help="photo folder to open and index")
    parser.add_argument("--checkpoint", help="checkpoint folder (default: the bundled model)")
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], help="where the model runs")
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["gui"]:
        args = args[1:]
    return parser.parse_args(args)


def main(argv: list[str] | None = None) -> int:
    """Show the main window (in well under 2 s: the model loads in the background) and run the event loop."""
    args = parse_args(argv)
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
    if args.folder:
        window.open_folder(args.folder)
    try:
        return int(app.exec())
    finally:
        from .plot_canvas import shutdown_render_process

        shutdown_render_process()


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
