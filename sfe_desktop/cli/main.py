"""``sfe-desktop`` and its collection commands (index, search, export, info); no arguments, a folder (or ``gui``)
opens the desktop app. Training and evaluation commands: :mod:`.train`.

Arguments and folders are checked before anything heavy loads (torch, faiss, Qt: seconds on a busy machine), so
a typo or a missing folder is reported at once; ``train`` and ``evaluate`` load the training code to show its
defaults.
"""
from __future__ import annotations

import argparse
import difflib
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from .. import __version__
from ..data import strict_json
from ..data.schema import Int
from ..errors import SFEError
from ..memory import tune_allocator
from ..model.config import BOUNDS
from ..search.types import MAX_TOP
from .common import OneLineParser, SafeFormatter, bounded, error_line, show

log = logging.getLogger(__name__)
COMMANDS = ("index", "search", "explain", "export", "info", "gui", "train", "evaluate")
TRAIN_COMMANDS = ("train", "evaluate")
TOP_LEVEL_FLAGS = ("-v", "--verbose")


def _folder(path: str) -> str:
    """``path`` as an absolute folder, or :class:`SFEError` in one line (before any model loads)."""
    full = os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(full):
        raise SFEError(f"the folder {show(path)} does not exist")
    if not os.path.isdir(full):
        raise SFEError(f"{show(path)} is not a folder")
    return full


def _collection(args, indexed: bool = True, searched: bool = True):
    """Open the collection of ``args.dir``. ``indexed``: the folder must have been indexed already (searches,
    export, info); otherwise say so and create nothing; ``searched`` too: it must have been indexed with the
    checkpoint given (said before the model loads; ``info`` reports it instead). A damaged index that was moved
    aside is noted on stderr."""
    folder = _folder(args.dir)
    if indexed:
        from ..settings import CATALOG_FILE, default_checkpoint, existing_index_dir

        index_dir = existing_index_dir(folder, args.index_dir)
        if index_dir is None:
            raise SFEError(f"{show(args.dir)} is not indexed yet; index it first: sfe-desktop index {show(args.dir)}")
        if searched:
            _check_checkpoint(index_dir, Path(args.checkpoint) if args.checkpoint else default_checkpoint(),
                              CATALOG_FILE)
    from ..model.runtime import SFERuntime
    from ..search import Collection

    runtime = SFERuntime.load(args.checkpoint, args.device)
    col = Collection.open(folder, runtime, args.index_dir, batch_size=getattr(args, "batch_size", None))
    if col.notice:
        print(f"note: {show(col.notice)}", file=sys.stderr)
    return col


def _check_checkpoint(index_dir: Path, checkpoint: Path, catalog_file: str) -> None:
    """An index built with another checkpoint cannot be searched: say so before the model (and torch) load."""
    from ..catalog.db import built_with, other_checkpoint
    from ..model.layout import checkpoint_id

    try:
        wanted = checkpoint_id(checkpoint)
    except OSError:
        return  # loading the checkpoint will say what is wrong with it
    reason = other_checkpoint(index_dir, built_with(index_dir / catalog_file), wanted)
    if reason:
        raise SFEError(reason)


def _print_results(results, as_json: bool) -> None:
    if as_json:
        print(strict_json.dumps([r.to_dict() for r in results], indent=1))
        return
    for r in results:  # rank, score, match confidence (when the checkpoint is calibrated), photo or caption
        conf = "    " if r.confidence is None else f"{100 * r.confidence:3.0f}%"
        print(f"{r.rank:4d}  {r.score:8.4f}  {conf}  {show(r.path if r.path is not None else r.caption)}")
    if not results:
        print("no results", file=sys.stderr)


def cmd_index(args) -> int:
    from tqdm import tqdm

    cancel = threading.Event()
    if args.cluster:
        import importlib.util

        if importlib.util.find_spec("distributed") is None:  # said before the model loads
            raise SFEError("indexing on a cluster needs Dask: pip install 'sfe-desktop[cluster]' (in a checkout: "
                           "pip install -e '.[cluster]')")
    with _collection(args, indexed=False) as col:
        bar = tqdm(total=0, unit="img", desc="indexing", dynamic_ncols=True, disable=args.quiet)

        def progress(p) -> None:
            bar.total = p.total
            bar.n = p.done
            bar.set_postfix(skipped=p.skipped, refresh=False)
            bar.refresh()

        try:
            if args.cluster:
                summary = _index_on_cluster(args, col, progress, cancel)
            else:
                summary = col.index(progress=progress, cancel=cancel, reencode=args.reencode)
        except KeyboardInterrupt as exc:
            cancel.set()
            print("\ninterrupted: what was indexed is kept; run the same command to continue", file=sys.stderr)
            return _interrupted_status(exc)
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


def _index_on_cluster(args, col, progress, cancel):
    """``index --cluster``: the workers load the checkpoint the coordinator loaded (the bundled one by default)."""
    from ..search.cluster import WorkerModel

    model = WorkerModel(os.path.abspath(args.checkpoint) if args.checkpoint else None, args.device)
    summary, done = col.index_on_cluster(args.cluster, model, progress=progress, cancel=cancel, reencode=args.reencode,
                                         shard_size=args.shard_size, shard_dir=args.shard_dir)
    workers = {d.worker for d in done}
    if done:
        rate = sum(d.encoded + d.skipped for d in done) / max(sum(d.seconds for d in done), 1e-9)
        print(f"{len(done)} shards on {len(workers)} workers: {rate:.1f} photos/s per worker")
    return summary


def _photo(path: str) -> str:
    """``path`` when it is a regular file, else :class:`SFEError` in one line (before any model loads) that says
    what it is instead (a FIFO, a device, a folder: never opened)."""
    from ..data.files import NotRegularFileError, regular_stat

    try:
        regular_stat(path)
    except FileNotFoundError:
        raise SFEError(f"the photo {show(path)} does not exist") from None
    except NotRegularFileError as exc:
        raise SFEError(f"the photo {show(path)} is {exc.strerror}") from None
    return path


def cmd_search(args) -> int:
    if sum(x is not None for x in (args.query, args.image, args.similar)) != 1:
        raise SFEError("give exactly one of a text query, --image PHOTO or --similar PHOTO")
    if args.image or args.similar:
        _photo(args.image or args.similar)
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
    if args.pairs is not None or (args.dir is not None and Path(args.dir).is_file()):  # pairs without an index
        from . import explain

        args.photo, args.text = (None, None) if args.pairs is not None else (args.dir, args.query)
        return explain.run(args)
    if args.dir is None:
        raise SFEError("give a photo folder (or a PHOTO and TEXT, or --pairs FILE.jsonl)")
    if (args.query is None) == (args.image is None):
        raise SFEError("give exactly one of a text query or --image PHOTO")
    if args.image:
        _photo(args.image)
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
    with _collection(args, searched=False) as col:
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


def build_parser(train_commands: bool = True) -> argparse.ArgumentParser:
    """The whole command line. ``train_commands`` False leaves ``train`` and ``evaluate`` as stubs (their
    options show the training code's defaults, which load torch): what :func:`main` does for other commands."""
    parser = OneLineParser(
        prog="sfe-desktop", description="Search a photo folder by meaning with SFE. "
        "`sfe-desktop [FOLDER]` opens the desktop app (on FOLDER).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    parser.add_argument("--version", action="version", version=f"sfe-desktop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)

    p = sub.add_parser("index", help="index (or update the index of) a photo folder")
    _common(p)
    p.add_argument("--report", action="store_true", help="list skipped files with the reason")
    p.add_argument("--reencode", action="store_true", help="re-encode everything (after changing the model)")
    p.add_argument("--batch-size", type=bounded(Int(1, 4096)), default=None,
                   help="images per model batch (default: automatic)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--cluster", metavar="ADDRESS", default=None,
                   help="encode on a Dask cluster: a scheduler address (tcp://host:8786) or local:N for N worker "
                        "processes here; needs the cluster extra (pip install 'sfe-desktop[cluster]')")
    p.add_argument("--shard-size", type=bounded(Int(1, 1_000_000)), default=256,
                   help="photos per cluster shard (default: 256)")
    p.add_argument("--shard-dir", default=None,
                   help="folder the cluster workers write shards into, shared with them (default: INDEX_DIR/shards)")
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
    p.add_argument("--grounding", default="regions", choices=("regions", "mixed", "attention", "classes"),
                   help="how the word maps are made (default regions: Step-2 attention with the ImageNet class maps,"
                        " weighted by where the whole text matches windows of the photo)")
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

    p = sub.add_parser("gui", help="open the desktop app (the default: `sfe-desktop [FOLDER]`)")
    p.add_argument("gui_args", nargs=argparse.REMAINDER,
                   help="[FOLDER] [--search TEXT] [--checkpoint C] [--device D]")
    p.set_defaults(func=cmd_gui)

    if train_commands:
        from . import train

        train.register(sub)
    else:
        for name, text in (("train", "train an SFE model (sfe-desktop train --help)"),
                           ("evaluate", "R@K of a checkpoint on a dataset split (sfe-desktop evaluate --help)")):
            sub.add_parser(name, help=text, add_help=False).add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def route(argv: list[str]) -> list[str]:
    """The arguments with ``gui`` inserted where the app is meant: no command, or a folder (or a gui option)
    first, as in ``sfe-desktop ~/Pictures``. A first word that is neither a command nor an existing path is an
    error (with the nearest command when it looks like a typo of one)."""
    i = 0
    while i < len(argv) and argv[i] in TOP_LEVEL_FLAGS:
        i += 1
    if i == len(argv):
        return argv + ["gui"]
    word = argv[i]
    if word in COMMANDS or word in ("-h", "--help", "--version"):
        return argv
    if not word.startswith("-") and not os.path.exists(os.path.expanduser(word)):
        near = difflib.get_close_matches(word, COMMANDS, n=1)
        hint = f" (did you mean `sfe-desktop {near[0]}`?)" if near and os.sep not in word else ""
        raise SFEError(f"{show(word)} is neither a command nor an existing folder{hint}; "
                       "see sfe-desktop --help")
    return argv[:i] + ["gui"] + argv[i:]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl+C so that commands stop the same way (an index run keeps
    what it committed)."""


def _on_sigterm(signum, _frame) -> None:
    raise Terminated(signum)


def _interrupted_status(exc: KeyboardInterrupt) -> int:
    """The shell's status for a command stopped by a signal: 128 + its number."""
    return 128 + int(signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = route(argv)
    except SFEError as exc:
        error_line(exc)
        return 2
    i = next(i for i, a in enumerate(argv) if a not in TOP_LEVEL_FLAGS)
    parser = build_parser(train_commands=argv[i] in TRAIN_COMMANDS)
    if argv[i] == "gui":  # the app parses its own options (argparse.REMAINDER does not take a leading option)
        args = parser.parse_args(argv[:i] + ["gui"])
        args.gui_args = argv[i + 1:]
    else:
        args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        handlers=[handler])
    if args.func is not cmd_gui and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)  # the app handles its own signals (qt/app.py)
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
    except KeyboardInterrupt as exc:
        print("\ninterrupted", file=sys.stderr)
        return _interrupted_status(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
