"""The layering rules of docs/architecture.md, checked on the code as it is (CI runs these with the rest)."""
from __future__ import annotations

import ast
import logging
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "sfe_desktop"
ENTRY_POINTS = ("cli", "qt")  # everything else is the core


def test_import_contracts_of_pyproject_hold(capsys):
    """The import-linter contracts in pyproject.toml: layers, no Qt/CLI/tqdm/argparse in the core, matplotlib only
    in explanation.plots, no torch under explanation/."""
    loggers = [lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    enabled = [lg for lg in loggers if not lg.disabled]
    try:
        status = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    finally:  # import-linter configures logging with dictConfig, which disables every logger that exists by then
        for lg in enabled:
            lg.disabled = False
    assert status == 0, capsys.readouterr().out[-3000:]


def test_no_import_cycles_between_modules():
    """Not even through imports inside functions (which import-linter's layers do not see within a package)."""
    graph = grimp.build_graph("sfe_desktop", cache_dir=None)
    cycles = set()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if graph.find_shortest_chain(importer=imported, imported=module):
                cycles.add(" <-> ".join(sorted((module, imported))))
    assert not cycles, sorted(cycles)


def _core_files() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py"))
            if p.relative_to(PACKAGE).parts[0].removesuffix(".py") not in ENTRY_POINTS]


def test_the_core_never_prints_or_exits():
    calls = []
    for path in _core_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f"{getattr(f.value, 'id', '?')}.{f.attr}" \
                if isinstance(f, ast.Attribute) else ""
            if name in {"print", "input", "exit", "quit", "sys.exit", "os._exit", "breakpoint"}:
                calls.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}()")
    assert _core_files() and not calls, calls
