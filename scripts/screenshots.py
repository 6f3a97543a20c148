"""Take the screenshots in docs/screenshots/ from the real window.

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshots.py [--checkpoint DIR]

Uses the bundled default checkpoint when it exists (or --checkpoint), else the tiny random model.
Opens a folder of generated photos (with the freely licensed sample photos of scikit-image when it is installed:
public domain and CC0, see FREE_PHOTOS), and saves: the library, a search with its explanation (light and dark),
each explanation view, the built-in viewer with the heatmap overlay, a multi-selection, photo -> captions with its
query photo, the neighbour graph in a 1000x700 window, a query that matches nothing, and the settings dialog.
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


# scikit-image's sample photos that are free to reuse (their docstrings in skimage/data/_fetchers.py): name,
# licence, and the date the screenshots give them (EXIF DateTimeOriginal, so that the library sorts by it)
FREE_PHOTOS = [("astronaut", "public domain (NASA)"), ("chelsea", "CC0 (Stefan van der Walt)"),
               ("coffee", "CC0 (Rachel Michetti)"), ("rocket", "public domain (SpaceX)"),
               ("grass", "CC0 (CC0Textures)"), ("brick", "CC0 (CC0Textures)"), ("gravel", "CC0 (CC0Textures)")]


def date_photos(folder: Path, seed: int = 1) -> None:
    """Give every JPEG of ``folder`` an EXIF date taken (spread over two years), as a camera would."""
    import datetime

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    start = datetime.datetime(2024, 3, 1, 9, 0)
    for path in sorted(folder.glob("*.jpg")):
        when = start + datetime.timedelta(days=int(rng.integers(0, 720)), minutes=int(rng.integers(0, 600)))
        with Image.open(path) as im:
            im.load()
            exif = im.getexif()
            exif.get_ifd(0x8769)[36867] = when.strftime("%Y:%m:%d %H:%M:%S")
            im.save(path, quality=90, exif=exif)


def add_free_photos(folder: Path) -> int:
    """Copy scikit-image's freely licensed sample photos into ``folder`` as JPEGs; 0 when it is not installed."""
    try:
        from skimage import data
    except ImportError:
        return 0
    from PIL import Image

    for name, _licence in FREE_PHOTOS:
        Image.fromarray(getattr(data, name)()).convert("RGB").save(folder / f"{name}.jpg", quality=92)
    # a second photo of the cat (its face, mirrored), so that "similar photos" has a like photo to compare
    cat = Image.fromarray(data.chelsea()).convert("RGB")
    w, h = cat.size
    cat.crop((w // 8, 0, w * 3 // 4, h * 3 // 4)).transpose(Image.FLIP_LEFT_RIGHT).save(folder / "chelsea-face.jpg",
                                                                                       quality=92)
    return len(FREE_PHOTOS) + 1


def main() -> int:
    parser = argparse.ArgumentParser(description="Save screenshots of the SFE Explorer window.")
    parser.add_argument("--checkpoint", help="checkpoint folder (default: bundled model, else tiny random model)")
    parser.add_argument("--query", default="a sunset over the sea")
    parser.add_argument("--nonsense", default="qxzv blorf wug", help="a query that should match nothing")
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
            make_scenes(folder, 32)
            add_free_photos(folder)
            date_photos(folder)
        window = QtMainWindow(QSettings(str(Path(tmp) / "s.ini"), QSettings.IniFormat), runtime_factory=factory)
        window.set_theme("light")
        window.resize(1400, 860)
        window.show()
        wait(window.session.runtime_loaded)
        window.open_folder(str(folder))
        wait(window.session.index_finished)
        wait(until=lambda: window.page is not None and window.page.is_library and len(window.page.results) > 0)
        settle(window)
        window.grab().save(str(out / "library.png"))

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

        window.open_viewer(window.model.index(0))
        window.viewer.overlay_button.setChecked(True)
        wait(until=lambda: window.viewer.canvas.image is not None, ms=30000)
        settle(window)
        window.grab().save(str(out / "viewer-overlay.png"))
        window.close_viewer()

        from PySide6.QtCore import QItemSelectionModel

        selection = window.view.selectionModel()
        for row in (1, 2, 4):
            selection.select(window.model.index(row), QItemSelectionModel.Select)
        window.view.setFocus()
        window.copy_paths()  # the status line says what was copied
        settle(window)
        window.grab().save(str(out / "multi-select.png"))

        photo = str(folder / "chelsea.jpg") if (folder / "chelsea.jpg").exists() else window.model.results()[0].path
        window.find_captions(photo)
        wait(window.session.results_ready)
        window.view.setCurrentIndex(window.model.index(0))
        wait(window.session.explanation_ready)
        settle(window)
        window.grab().save(str(out / "captions.png"))

        window.go_back()
        settle(window)
        window.find_similar(photo)
        wait(window.session.results_ready)
        window.view.setCurrentIndex(window.model.index(0))
        wait(window.session.similar_ready)
        for size, name in (((1000, 700), "similar-1000x700.png"), ((1600, 1000), "similar-1600x1000.png")):
            window.resize(*size)
            settle(window)
            window.grab().save(str(out / name))
        window.resize(1400, 860)
        window.go_back()
        settle(window)
        window.view.setCurrentIndex(window.model.index(0))
        wait(window.session.explanation_ready)
        window.resize(1000, 700)
        for tab, name in ((2, "graph-1000x700.png"), (1, "concepts-cat-1000x700.png")):
            window.explanation.tabs.setCurrentIndex(tab)
            settle(window)
            window.grab().save(str(out / name))
        window.explanation.tabs.setCurrentIndex(0)
        window.resize(1400, 860)

        window.search_bar.setText(args.nonsense)
        window.search()
        wait(window.session.results_ready)
        settle(window)
        window.grab().save(str(out / "no-match.png"))

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
