"""``sfe-desktop`` and its collection commands (index, search, export, info); no arguments (or ``gui``) opens
the desktop app. Training and evaluation commands: :mod:`.train`."""
from __future__ import annotations

import argparse
import logging
import sys
import threading

from ..data import strict_json
from ..data.schema import Int
from ..errors import SFEError
from ..memory import tune_allocator
from ..model.config import BOUNDS
from ..search.types import MAX_TOP
from . import train
from .common import OneLineParser, SafeFormatter, bounded, error_line, show

log = logging.getLogger(__name__)


def _collection(args):
    from ..model.runtime import SFERuntime
    from ..search import Collection

    runtime = SFERuntime.load(args.checkpoint, args.device)
    col = Collection.open(args.dir, runtime, args.index_dir, batch_size=getattr(args, "batch_size", None))
    if col.notice:
        print(f"note: {show(col.notice)}", file=sys.stderr)
    return col


def _print_results(results, as_json: bool) -> None:
    if as_json:
        print(strict_json.dumps([r.to_dict() for r in results], indent=1))
        return
    for r in results:  # rank, score, match confidence (when the checkpoint is calibrated), photo or caption
        conf = "    " if r.confidence is None else f"{100 * r.confidence:3.0f}%"
        print(f"{r.rank:4d}  {r.score:8.4f}  {conf}  {show(r.path if r.path is not None else r.caption)}")
    if not results:
        print("no results (is the folder indexed? run: sfe-desktop index DIR)", file=sys.stderr)


def cmd_index(args) -> int:
    from tqdm import tqdm

    cancel = threading.Event()
    with _collection(args) as col:
        bar = tqdm(total=0, unit="img", desc="indexing", dynamic_ncols=True, disable=args.quiet)

        def progress(p) -> None:
            bar.total = p.total
            bar.n = p.done
            bar.set_postfix(skipped=p.skipped, refresh=False)
            bar.refresh()

        try:
            summary = col.index(progress=progress, cancel=cancel, reencode=args.reencode)
        except KeyboardInterrupt:
            cancel.set()
            print("\ninterrupted: what was indexed is kept; run the same command to continue", file=sys.stderr)
            return 130
        finally:
            bar.close()
        print(f"{summary.total} images: {summary.indexed} indexed, {summary.reused} reused (moved or copied), "
              f"{summary.removed} removed, {summary.skipped} skipped, in {summary.seconds:.1f} s"
              + (f"; {summary.compacted} unused vector rows compacted away" if summary.compacted else ""))
        skipped = col.skipped()
        if args.report:
            for path, reason in skipped:
                print(f"skipped  {show(path)}: {show(reason)}")
        elif skipped:
            print("list the skipped files with --report")
    return 0


def cmd_search(args) -> int:
    if sum(x is not None for x in (args.query, args.image, args.similar)) != 1:
        raise SFEError("give exactly one of a text query, --image PHOTO or --similar PHOTO")
    with _collection(args) as col:
        if args.image:
            results = col.search_image(args.image, top=args.top)
        elif args.similar:
            results = col.similar(args.similar, top=args.top)
        else:
            results = col.search_text(args.query, top=args.top, rerank_k=args.rerank_k)
    _print_results(results, args.json)
    return 0


def cmd_explain(args) -> int:
    from pathlib import Path

    if args.pairs is not None or (args.dir is not None and Path(args.dir).is_file()):  # pairs without an index
        from . import explain

        args.photo, args.text = (None, None) if args.pairs is not None else (args.dir, args.query)
        return explain.run(args)
    if args.dir is None:
        raise SFEError("give a photo folder (or a PHOTO and TEXT, or --pairs FILE.jsonl)")
    if (args.query is None) == (args.image is None):
        raise SFEError("give exactly one of a text query or --image PHOTO")
    with _collection(args) as col:
        if args.image:
            results = col.search_image(args.image, top=args.rank, rerank_k=args.rerank_k)
        else:
            results = col.search_text(args.query, top=args.rank, rerank_k=args.rerank_k)
        if len(results) < args.rank:
            raise SFEError(f"the search has {len(results)} results, none at rank {args.rank}")
        explanation = col.explain(results[args.rank - 1])
    print(explanation.to_json(indent=1))
    return 0


def cmd_export(args) -> int:
    from ..export import write_csv

    with _collection(args) as col:
        results = col.search_text(args.query, top=args.top, rerank_k=args.rerank_k)
    write_csv(results, args.csv)
    print(f"wrote {len(results)} results to {show(args.csv)}")
    return 0


def cmd_info(args) -> int:
    with _collection(args) as col:
        info = col.info()
    if args.json:
        print(strict_json.dumps(info, indent=1))
    else:
        for key, value in info.items():
            print(f"{key:>14}: {show(value)}")
    return 0


def cmd_gui(args) -> int:
    try:
        from ..qt.app import main as gui_main
    except ImportError as exc:
        raise SFEError(f"the desktop app cannot start: {exc}") from exc
    return gui_main(args.gui_args)


def _common(p: argparse.ArgumentParser, folder_help: str = "photo folder", folder_optional: bool = False) -> None:
    p.add_argument("dir", help=folder_help, **({"nargs": "?", "default": None} if folder_optional else {}))
    p.add_argument("--checkpoint", default=None, help="checkpoint folder (default: the bundled model, or SFE_CHECKPOINT)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (env SFE_DEVICE overrides)")
    p.add_argument("--index-dir", default=None, help="index folder (default: DIR/.sfe-index)")


def _rerank_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rerank-k", type=bounded(BOUNDS["rerank_k"]), default=None,
                   help="Step-1 candidates re-ranked by Step 2 (default: the checkpoint's; 0: off)")


def _top_option(p: argparse.ArgumentParser, default: int) -> None:
    p.add_argument("--top", type=bounded(Int(1, MAX_TOP)), default=default, help=f"results (default: {default})")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="sfe-desktop", description="Search a photo folder by meaning with SFE.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)

    p = sub.add_parser("index", help="index (or update the index of) a photo folder")
    _common(p)
    p.add_argument("--report", action="store_true", help="list skipped files with the reason")
    p.add_argument("--reencode", action="store_true", help="re-encode everything (after changing the model)")
    p.add_argument("--batch-size", type=bounded(Int(1, 4096)), default=None,
                   help="images per model batch (default: automatic)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", help="search by text, by photo (captions) or for similar photos")
    _common(p)
    p.add_argument("query", nargs="?", default=None, help="text query")
    p.add_argument("--image", metavar="PHOTO", help="captions describing PHOTO")
    p.add_argument("--similar", metavar="PHOTO", help="photos of the folder similar to PHOTO")
    _top_option(p, 20)
    _rerank_option(p)
    p.add_argument("--json", action="store_true", help="print a JSON list, most similar first")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("explain", help="why a photo matches a text, as JSON: PHOTO TEXT, --pairs FILE.jsonl, or "
                                         "the result at --rank of a search of a folder")
    _common(p, "photo folder, or one photo (then TEXT is its text)", folder_optional=True)
    p.add_argument("query", nargs="?", default=None, help="text query (a text -> photo result), or the TEXT of PHOTO")
    p.add_argument("--pairs", metavar="FILE.jsonl", default=None,
                   help='explain every line {"photo": ..., "text": ...}; one JSON object per line')
    p.add_argument("--grounding", default="mixed", choices=("mixed", "attention", "classes"),
                   help="how the word maps are made (default mixed: Step-2 attention with the ImageNet class maps)")
    p.add_argument("--json", action="store_true", help="JSON output (the only format; accepted for scripts)")
    p.add_argument("--image", metavar="PHOTO", help="a photo -> caption result of PHOTO instead")
    p.add_argument("--rank", type=bounded(Int(1, MAX_TOP)), default=1, help="which result (default: 1, the best)")
    _rerank_option(p)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("export", help="write the results of a text query as CSV")
    _common(p)
    p.add_argument("query", help="text query")
    p.add_argument("--csv", required=True, help="output file (its folder must exist)")
    _top_option(p, 100)
    _rerank_option(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("info", help="counts, model, device and index size of an indexed folder")
    _common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("gui", help="open the desktop app (the default without a command)")
    p.add_argument("gui_args", nargs=argparse.REMAINDER, help="[DIR] [--checkpoint C] [--device D]")
    p.set_defaults(func=cmd_gui)

    train.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv or ["gui"])
    handler = logging.StreamHandler()
    handler.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        handlers=[handler])
    tune_allocator()
    try:
        return int(args.func(args) or 0)
    except SFEError as exc:
        error_line(exc)
        return 2
    except OSError as exc:  # a file the user named (an output, a folder) that cannot be used
        where = f"{exc.filename}: " if exc.filename else ""
        error_line(f"{where}{exc.strerror or exc}")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
