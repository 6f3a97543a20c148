"""One real start-up on an X server (Xvfb) with Qt's xcb platform, as a user's desktop runs it: the window shows,
a search given on the command line runs once the bundled model has loaded and the folder is indexed, and the app
quits (Ctrl+Q through the X server when xdotool is there, else SIGTERM) leaving no process behind.

The other Qt tests run offscreen; this one catches what only the xcb plugin needs (its shared libraries). It is
skipped where ``xvfb-run`` is not installed (``.ci/apt-packages.txt`` lists it and the xcb libraries for CI)."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from qt_helpers import make_photos, session_processes, wait_for_log

pytestmark = pytest.mark.skipif(shutil.which("xvfb-run") is None or not sys.platform.startswith("linux"),
                                reason="needs xvfb-run (apt-get install xvfb)")

ROOT = Path(__file__).parents[2]
SHOWN = re.compile(r"window shown \(platform (\w+), display (\S+), pid (\d+)\)")


def test_the_app_starts_searches_and_quits_under_xvfb(tmp_path):
    folder = tmp_path / "photos"
    make_photos(folder, 6)
    log = tmp_path / "app.log"
    auth = tmp_path / "xauth"
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "SFE_DATA_DIR": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "xdg"),
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    env.pop("DISPLAY", None)
    command = ["xvfb-run", "-a", "-f", str(auth), "-s", "-screen 0 1280x800x24",
               sys.executable, "-m", "sfe_desktop.qt.app", str(folder), "--search", "a red dog"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
                                start_new_session=True)
    try:
        shown = wait_for_log(log, SHOWN, proc, 120)
        platform, display, pid = shown.group(1), shown.group(2), int(shown.group(3))
        assert platform == "xcb"
        x_env = {**os.environ, "DISPLAY": display, "XAUTHORITY": str(auth)}
        xdotool = shutil.which("xdotool")
        window = None
        if xdotool:  # the X server itself says the window is mapped
            found = subprocess.run([xdotool, "search", "--sync", "--onlyvisible", "--name", "SFE Explorer"],
                                   env=x_env, capture_output=True, text=True, timeout=60)
            window = found.stdout.split()[0] if found.stdout.split() else None
            assert window, found.stderr
        # the search typed on the command line waits for the model and the folder, and runs again once indexed
        wait_for_log(log, re.compile(r"text->image search for 'a red dog': 6 results"), proc, 300)
        assert "Traceback" not in log.read_text(errors="replace")
        if window:
            subprocess.run([xdotool, "windowfocus", "--sync", window], env=x_env, timeout=30, check=True)
            subprocess.run([xdotool, "key", "--clearmodifiers", "ctrl+q"], env=x_env, timeout=30, check=True)
            expected = 0
        else:
            os.kill(pid, signal.SIGTERM)
            expected = 128 + signal.SIGTERM
        assert proc.wait(timeout=60) == expected, log.read_text(errors="replace")[-3000:]
        deadline = time.monotonic() + 10
        while session_processes(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert session_processes(proc.pid) == []  # neither the render process nor the resource tracker
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
