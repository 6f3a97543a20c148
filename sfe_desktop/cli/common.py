"""What every command shares: printing names safely, one-line argument errors, bounded option values."""
from __future__ import annotations

import argparse
import logging
import re
import sys

from ..data.schema import Spec

# control characters (a file name can hold an ANSI escape sequence or a newline) and the bidirectional controls
# that make a name display as another
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def show(text) -> str:
    """Printable form of a path, caption or message: not-UTF-8 bytes as ``\\xNN``, control characters escaped, so
    nothing a file name holds can move the cursor, recolour the terminal or start a new line."""
    if text is None:
        return ""
    text = str(text)
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "backslashreplace")
    text = raw.decode("utf-8", "backslashreplace")
    return _UNSAFE.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


def error_line(message) -> None:
    print(f"error: {show(message)}", file=sys.stderr)


class OneLineParser(argparse.ArgumentParser):
    """An argument error is one line, ``error: argument --top: must be ...`` (exit status 2), without the usage
    block; ``--help`` shows the usage."""

    def error(self, message: str):
        error_line(f"{message} (sfe-desktop {self.prog.split(' ', 1)[-1]} --help lists the options)"
                   if " " in self.prog else f"{message} (sfe-desktop --help lists the commands)")
        sys.exit(2)


def bounded(spec: Spec):
    """An argparse ``type`` that accepts what ``spec`` accepts and says what it accepts otherwise."""
    def parse(text: str):
        try:
            return spec.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = type(spec).__name__.lower()
    return parse


class SafeFormatter(logging.Formatter):
    """Log lines with control characters escaped (log messages name files)."""

    def format(self, record: logging.LogRecord) -> str:
        return "\n".join(show(line) for line in super().format(record).split("\n"))
