"""The allocator tuning (sfe_desktop/memory.py): freed activation memory stays in the process, so a batch does
not page-fault its buffers in again."""
import os
import platform
import subprocess
import sys

import pytest

from sfe_desktop import memory

# In a fresh process: tune (or not), then allocate, fill and free 64 MB five times after a first round, and count
# the minor page faults of those five rounds.
PROBE = """
import resource
from sfe_desktop.memory import tune_allocator
applied = tune_allocator()
size = 64 << 20
buffer = b"\\x01" * size
del buffer
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    buffer = b"\\x02" * size
    del buffer
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
PAGES = 5 * (64 << 20) // os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 0


def _probe(tuning: str) -> tuple[bool, int]:
    env = {**os.environ, "SFE_MALLOC_TUNING": tuning}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-500:]
    applied, faults = out.stdout.split()
    return applied == "True", int(faults)


def test_opt_out_leaves_the_allocator_alone(monkeypatch):
    monkeypatch.setattr(memory, "_applied", None)
    monkeypatch.setenv("SFE_MALLOC_TUNING", "0")
    assert memory.tune_allocator() is False
    monkeypatch.setenv("SFE_MALLOC_TUNING", "1")
    assert memory.tune_allocator() is False  # decided once per process


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="mallopt is glibc's")
def test_freed_buffers_are_reused_without_page_faults():
    tuned, tuned_faults = _probe("1")
    untuned, untuned_faults = _probe("0")
    assert tuned and not untuned
    assert untuned_faults > PAGES // 2  # glibc's defaults: every round maps and faults its 64 MB in afresh
    assert tuned_faults < PAGES // 20   # tuned: the rounds reuse the heap the first one faulted in
