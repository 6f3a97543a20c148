"""Helpers shared by the Qt tests: generated photo folders, waiting for indexing and searches."""
from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import sys

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
from guards import session_processes  # noqa: E402,F401  (one walk of /proc for both test trees)

COLOURS = [(200, 40, 40), (40, 160, 60), (40, 80, 200), (230, 200, 40), (20, 20, 20), (240, 240, 240)]


def make_photos(folder: Path, n: int, size: tuple[int, int] = (96, 72), seed: int = 0) -> list[Path]:
    """``n`` small JPEGs: a coloured background with a few random discs."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        im = Image.new("RGB", size, COLOURS[i % len(COLOURS)])
        draw = ImageDraw.Draw(im)
        for _ in range(3):
            x, y = int(rng.integers(0, size[0] - 16)), int(rng.integers(0, size[1] - 16))
            draw.ellipse([x, y, x + 16, y + 16], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
        path = folder / f"photo_{i:03d}.jpg"
        im.save(path, quality=85)
        paths.append(path)
    return paths


def open_and_index(qtbot, window, folder) -> object:
    """Open ``folder`` and return the IndexSummary once indexing finished and the library shows every photo."""
    with qtbot.waitSignal(window.session.index_finished, timeout=60000) as blocker:
        assert window.open_folder(str(folder))
    summary = blocker.args[0]
    if summary is not None and window.page is not None and window.page.is_library:
        qtbot.waitUntil(lambda: len(window.page.results) == summary.searchable, timeout=30000)
    return summary


def run_search(qtbot, window, trigger) -> list:
    with qtbot.waitSignal(window.session.results_ready, timeout=30000) as blocker:
        trigger()
    return blocker.args[2]


def wait_for_log(log: Path, pattern: re.Pattern, proc: subprocess.Popen, seconds: float) -> re.Match:
    """The first match of ``pattern`` in the log file of the process ``proc``, once it is written."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        match = pattern.search(log.read_text(errors="replace"))
        if match:
            return match
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"no {pattern.pattern!r} in the app's log:\n{log.read_text(errors='replace')[-3000:]}")


def command_line(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
