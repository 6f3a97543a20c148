"""SIGTERM and SIGINT end the app like its Quit menu, and with it the children it started: the render process
and multiprocessing's resource tracker (which used to be left behind as orphans every time).

The app runs in its own interpreter and session (the offscreen platform, the tiny model standing in for the
bundled one), so that every process it started can be found, by its session id, after it has gone."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from qt_helpers import command_line, make_photos, session_processes, wait_for_log

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

ROOT = Path(__file__).parents[2]
START = ("import sys\nfrom sfe_desktop.model.runtime import SFERuntime, tiny_runtime\n"
         "SFERuntime.load = classmethod(lambda cls, checkpoint=None, device='auto': tiny_runtime())\n"
         "from sfe_desktop.qt.app import main\nsys.exit(main(sys.argv[1:]))\n")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_closes_the_app_and_ends_its_children(tmp_path, signum):
    folder = tmp_path / "photos"
    make_photos(folder, 6)
    log = tmp_path / "app.log"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "SFE_DATA_DIR": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "xdg"),
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", START, str(folder), "--search", "a red dog"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)
    try:
        wait_for_log(log, re.compile(r"text->image search for 'a red dog': 6 results"), proc, 180)
        deadline = time.monotonic() + 30
        children = []
        while time.monotonic() < deadline:  # the render process, and the tracker its queues started
            children = [command_line(p) for p in session_processes(proc.pid) if int(p) != proc.pid]
            if any("resource_tracker" in c for c in children) and any("spawn_main" in c for c in children):
                break
            time.sleep(0.2)
        assert any("resource_tracker" in c for c in children) and any("spawn_main" in c for c in children), \
            children
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == 128 + signum, log.read_text(errors="replace")[-3000:]
        text = log.read_text(errors="replace")
        assert f"{signal.Signals(signum).name} received: closing" in text and "Traceback" not in text
        deadline = time.monotonic() + 10
        while session_processes(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [command_line(p) for p in session_processes(proc.pid)] == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
