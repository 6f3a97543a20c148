import platform
import sys

import pytest

from sfe_desktop import memory


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(memory, "_applied", None)


def test_opt_out_leaves_the_allocator_alone(fresh, monkeypatch):
    monkeypatch.setenv("SFE_MALLOC_TUNING", "0")
    assert memory.tune_allocator() is False
    monkeypatch.setenv("SFE_MALLOC_TUNING", "1")
    assert memory.tune_allocator() is False  # decided once per process


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="mallopt is glibc's")
def test_applies_on_glibc_once(fresh, monkeypatch):
    monkeypatch.delenv("SFE_MALLOC_TUNING", raising=False)
    assert memory.tune_allocator() is True
    assert memory.tune_allocator() is True
    big = bytearray(64 << 20)  # served by the heap now, not a fresh mapping; must still work
    big[-1] = 1
    assert big[-1] == 1
