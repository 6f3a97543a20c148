"""``sfe-desktop explain PHOTO TEXT`` and ``sfe-desktop explain --pairs FILE.jsonl``: explanations of pairs
without an index (each photo is encoded here), as JSON. The heatmap printed is the one the app draws."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import SFEError

MAX_LINE = 1 << 20  # a line of the pairs file longer than this is an error, not a read of the whole file


def _pair(line: str) -> tuple[str, str]:
    """(photo, text) of one line ``{"photo": ..., "text": ...}`` of a pairs file; one-line errors."""
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise SFEError(f"not JSON ({exc.msg})") from None
    if not isinstance(item, dict) or not isinstance(item.get("photo"), str) or not isinstance(item.get("text"), str):
        raise SFEError('expected {"photo": "...", "text": "..."}')
    return item["photo"], item["text"]


def explain_record(rt, photo: str, text: str, grounding: str) -> dict:
    """The explanation of (``photo``, ``text``) as plain data, with the pair and its match confidence."""
    explanation, confidence = rt.explain_photo(photo, text, grounding=grounding)
    return {**explanation.to_dict(), "photo": photo, "text": text, "confidence": confidence}


def run(args) -> int:
    """Explain one pair (``args.photo``, ``args.text``) or every line of ``args.pairs``; prints JSON."""
    from ..model.runtime import SFERuntime

    if args.pairs is None and (args.photo is None or args.text is None):
        raise SFEError("give PHOTO and TEXT, or --pairs FILE.jsonl")
    if args.pairs is not None and not Path(args.pairs).is_file():
        raise SFEError(f"{args.pairs}: no such file")
    if args.photo is not None and not Path(args.photo).is_file():
        raise SFEError(f"{args.photo}: no such photo")
    rt = SFERuntime.load(args.checkpoint, args.device)
    indent = None if args.pairs is not None else 1
    if args.pairs is None:
        print(json.dumps(explain_record(rt, args.photo, args.text, args.grounding), indent=indent, allow_nan=False))
        return 0
    failed = 0
    with open(args.pairs, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(iter(lambda: fh.readline(MAX_LINE), ""), start=1):
            if not line.strip():
                continue
            try:
                if len(line) >= MAX_LINE and not line.endswith("\n"):
                    raise SFEError(f"longer than {MAX_LINE} characters")
                photo, text = _pair(line)
                out = explain_record(rt, photo, text, args.grounding)
            except SFEError as exc:  # one bad pair: a one-line error, and the batch goes on
                failed += 1
                print(f"error: line {number}: {exc}", file=sys.stderr)
                out = {"line": number, "error": str(exc)}
            print(json.dumps(out, allow_nan=False), flush=True)
            if len(line) >= MAX_LINE and not line.endswith("\n"):  # skip the rest of an over-long line
                while (rest := fh.readline(MAX_LINE)) and not rest.endswith("\n"):
                    pass
    return 1 if failed else 0
