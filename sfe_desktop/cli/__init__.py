"""``sfe-desktop``: the command line. Parses arguments, calls the core, prints; no logic of its own.

``main`` (collection commands and the GUI launcher) and ``train`` (``train``, ``evaluate``) are the only places
besides ``qt/`` that print, show progress bars or exit with a status.
"""
from .main import build_parser, main

__all__ = ["build_parser", "main"]
