"""PySide6 desktop layer: the only package that imports Qt. It calls the core and shows what it returns."""
from .compat import keep_none_alive

keep_none_alive()  # before any Qt call: PySide6 6.12.0 leaks references to None (see compat.py)
