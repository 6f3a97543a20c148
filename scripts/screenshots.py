"""Take the screenshots in docs/screenshots/ from the real window.

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshots.py [--checkpoint DIR]

Uses the bundled default checkpoint when it exists (or --checkpoint), else the tiny random model.
Opens a folder of generated photos, searches, selects the best result and saves the main window (light
and dark), each explanation view and the settings dialog.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "qt"))
OUT = ROOT / "docs" / "screenshots"


SKIES = [((255, 140, 60), (120, 40, 90)), ((120, 180, 255), (200, 230, 255)), ((30, 30, 70), (5, 5, 20)),
         ((200, 200, 210), (240, 240, 245))]
GROUNDS = [(20, 60, 120), (60, 150, 50), (240, 240, 250), (200, 170, 110), (90, 90, 90)]


def make_scenes(folder: Path, n: int, size=(480, 360), seed: int = 0) -> None:
    """Simple generated landscapes (sky gradient, ground, a sun or moon, a few trees): no real photos
    are copied into the project, so the screenshots are made from these."""
    import numpy as np
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    for i in range(n):
        top, bottom = (np.array(c, float) for c in SKIES[i % len(SKIES)])
        horizon = int(h * rng.uniform(0.45, 0.7))
        ramp = np.linspace(0, 1, horizon)[:, None, None]
        sky = (top * (1 - ramp) + bottom * ramp).repeat(w, axis=1)
        img = np.zeros((h, w, 3), np.uint8)
        img[:horizon] = sky.astype(np.uint8)
        img[horizon:] = np.array(GROUNDS[(i // len(SKIES)) % len(GROUNDS)], np.uint8)
        im = Image.fromarray(img)
        d = ImageDraw.Draw(im)
        x, y, r = int(rng.integers(60, w - 60)), int(rng.integers(30, horizon - 20)), int(rng.integers(18, 40))
        d.ellipse([x - r, y - r, x + r, y + r], fill=(255, 230, 150) if i % len(SKIES) != 2 else (235, 235, 255))
        for _ in range(int(rng.integers(0, 4))):
            tx = int(rng.integers(10, w - 30))
            d.polygon([(tx, horizon), (tx + 30, horizon), (tx + 15, horizon - 70)], fill=(20, 90, 30))
        im.save(folder / f"scene_{i:03d}.jpg", quality=90)


def main() -> int:
    parser = argparse.ArgumentParser(description="Save screenshots of the SFE Explorer window.")
    parser.add_argument("--checkpoint", help="checkpoint folder (default: bundled model, else tiny random model)")
    parser.add_argument("--query", default="a sunset over the sea")
    parser.add_argument("--photos", help="folder of photos to show (copied to a temporary folder; default: generated)")
    parser.add_argument("--out", default=str(OUT), help="where to write the PNGs")
    args = parser.parse_args()

    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from sfe_desktop.settings import default_checkpoint
    from sfe_desktop.model.runtime import SFERuntime, tiny_runtime
    from sfe_desktop.qt.app import resources_dir
    from sfe_desktop.qt.main_window import QtMainWindow
    from sfe_desktop.qt.widgets.settings_dialog import QtSettingsDialog

    checkpoint = args.checkpoint or (str(default_checkpoint()) if default_checkpoint().is_dir() else None)
    model = checkpoint or "tiny random model"

    def factory(_checkpoint, device):
        return SFERuntime.load(checkpoint, device) if checkpoint else tiny_runtime()

    app = QApplication.instance() or QApplication(["sfe-desktop"])
    app.setWindowIcon(QIcon(str(resources_dir() / "icon.png")))

    def wait(signal=None, until=None, ms: int = 300000):
        loop = QEventLoop()
        if signal is not None:
            signal.connect(lambda *a: loop.quit())
        if until is not None:
            timer = QTimer()
            timer.timeout.connect(lambda: until() and loop.quit())
            timer.start(50)
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    def settle(window):
        wait(until=lambda: window.explanation.idle() and not window.model.thumbnails_pending(), ms=30000)
        for _ in range(5):
            app.processEvents()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "Holiday photos"
        if args.photos:
            shutil.copytree(args.photos, folder, ignore=shutil.ignore_patterns(".sfe-index"))
        else:
            make_scenes(folder, 40)
        window = QtMainWindow(QSettings(str(Path(tmp) / "s.ini"), QSettings.IniFormat), runtime_factory=factory)
        window.set_theme("light")
        window.resize(1400, 860)
        window.show()
        wait(window.session.runtime_loaded)
        window.open_folder(str(folder))
        wait(window.session.index_finished)
        window.search_bar.setText(args.query)
        window.search()
        wait(window.session.results_ready)
        window.view.setCurrentIndex(window.model.index(0))
        wait(window.session.explanation_ready)
        settle(window)
        window.grab().save(str(out / "main-window.png"))
        for tab, name in enumerate(["attention", "concepts", "graph"]):
            window.explanation.tabs.setCurrentIndex(tab)
            settle(window)
            window.explanation.grab().save(str(out / f"explanation-{name}.png"))
        window.explanation.tabs.setCurrentIndex(0)
        window.set_theme("dark")
        settle(window)
        window.grab().save(str(out / "main-window-dark.png"))
        window.set_theme("light")
        dialog = QtSettingsDialog(window.prefs, bool(window.session.cuda_available), window)
        dialog.show()
        settle(window)
        dialog.grab().save(str(out / "settings-dialog.png"))
        dialog.close()
        window.close()
    print(f"screenshots ({model}) written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
