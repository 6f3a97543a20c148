"""Work-arounds for bugs of the Qt binding that the app cannot avoid by how it calls Qt.

PySide6 6.12.0 loses one reference to ``None`` on every call of a method returning ``void`` (measured:
``QApplication.processEvents()`` and ``QWidget.update()`` lower ``sys.getrefcount(None)`` by exactly one per
call, on any thread, with or without other threads). On CPython 3.12+ ``None`` is immortal (PEP 683) and
nothing happens; on 3.11 its count reaches zero after ~10^5 such calls and CPython aborts with
"Fatal Python error: none_dealloc", wherever the last reference happens to be dropped (it was first seen in
matplotlib's text drawing on the render thread, which drops many references to ``None``).
:func:`keep_none_alive` gives ``None`` what 3.12 gives it: a reference count that cannot reach zero.
"""
from __future__ import annotations

import ctypes
import sys

_BOOST = 1 << 60  # ~10^18 lost references before trouble; the count is a Py_ssize_t (max 2^63 - 1)
_done = False


def keep_none_alive() -> bool:
    """Raise ``None``'s reference count by 2^60 once, on CPython < 3.12 (True when it did)."""
    global _done
    if _done or sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False
    # ob_refcnt is the first field of every PyObject in release builds of CPython 3.11
    ctypes.c_ssize_t.from_address(id(None)).value += _BOOST
    _done = True
    return True
