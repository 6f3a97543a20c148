"""A time limit for calls that used to hang (a FIFO blocks open() until someone writes to it): a regression fails
the test instead of hanging CI."""
from __future__ import annotations

import os
import threading

import pytest

LIMIT_S = 60  # generous: a loaded CI machine runs these calls in well under a second


def within(fn, *args, seconds: float = LIMIT_S, **kwargs):
    """``fn(*args, **kwargs)`` run on a daemon thread; the test fails when it has not returned after ``seconds``."""
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            box["error"] = exc

    worker = threading.Thread(target=run, daemon=True, name=f"guarded-{getattr(fn, '__name__', 'call')}")
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"{getattr(fn, '__name__', fn)} did not return within {seconds} s: it hangs")
    if "error" in box:
        raise box["error"]
    return box.get("value")


@pytest.fixture
def fifo(tmp_path):
    """Make FIFOs; at the end each is opened for writing once, which frees a reader a regression left blocked."""
    made = []

    def make(path):
        os.mkfifo(path)
        made.append(path)
        return path

    yield make
    for path in made:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO when nobody reads: nothing to free
            os.close(fd)
        except OSError:
            pass


def session_processes(leader: int) -> list[str]:
    """The processes (Linux /proc) still in the session that ``leader`` started: everything the run spawned."""
    left = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == leader:
                left.append(entry)
    return left
