"""The house: one import package laid out by family, imports one way, no import circles, one CLI whose every
command answers --help."""
from __future__ import annotations

import argparse
import ast
import importlib
import pkgutil
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import pytest

import vislearn

PACKAGE = Path(vislearn.__file__).resolve().parent
# which families each layer may import (DESIGN.md): common <- backbones <- pretrain <- {video, segment, control}
MAY_IMPORT = {
    "common": {"common"},
    "backbones": {"common", "backbones"},
    "pretrain": {"common", "backbones", "pretrain"},
    "video": {"common", "backbones", "pretrain", "video"},
    "segment": {"common", "backbones", "pretrain", "segment"},
    "control": {"common", "backbones", "pretrain", "control"},
}


def all_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages([str(PACKAGE)], "vislearn."))


def module_file(name: str) -> Path:
    rel = Path(*name.split(".")[1:])
    return PACKAGE / rel / "__init__.py" if (PACKAGE / rel).is_dir() else PACKAGE / rel.with_suffix(".py")


def imported_modules(name: str) -> set[str]:
    """Every vislearn module `name` imports, at module level or inside functions, relative imports resolved."""
    path = module_file(name)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}  # `from pkg import module`
    known = set(all_modules()) | {"vislearn"}
    return {m for m in found if m in known and m != name}


def test_every_module_imports():
    failures = []
    for name in all_modules():
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001  (the test lists every failure)
            failures.append(f"{name}: {type(e).__name__}: {e}")
    assert not failures, "\n".join(failures)


def test_the_distribution_installs_one_top_level_name():
    top = distribution("vislearn").read_text("top_level.txt")
    assert top is not None and top.split() == ["vislearn"]


def test_imports_run_one_way_and_families_never_import_each_other():
    wrong = []
    for name in all_modules():
        parts = name.split(".")
        if len(parts) < 2 or parts[1] not in MAY_IMPORT:
            continue  # vislearn/__main__.py and the demo registry sit above the families
        for dep in imported_modules(name):
            dep_family = dep.split(".")[1] if dep.count(".") else None
            if dep_family not in MAY_IMPORT[parts[1]]:
                wrong.append(f"{name} imports {dep}")
    assert not wrong, "\n".join(wrong)


def test_no_import_circles():
    graph = {name: imported_modules(name) for name in all_modules()}
    # a package's __init__ importing its own modules is how packages work, not a circle
    for name in graph:
        graph[name] = {d for d in graph[name] if not name.startswith(d + ".")}
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for v in graph:
        if v not in index:
            visit(v)
    assert not circles, "\n".join(" <-> ".join(c) for c in circles)


def cli_commands() -> list[list[str]]:
    """Every command line under `vislearn --help`: families' commands and their subcommands."""
    from vislearn.__main__ import FAMILIES, TOP_COMMANDS

    lines = [[c.name] for c in TOP_COMMANDS]
    for family, module in FAMILIES.items():
        lines.append([family])
        for c in importlib.import_module(module).COMMANDS:
            lines.append([family, c.name])
            build = getattr(importlib.import_module(c.module), "build_parser", None)
            for action in (build()._actions if build else []):
                if isinstance(action, argparse._SubParsersAction):
                    lines += [[family, c.name, sub] for sub in action.choices]
    return lines


@pytest.mark.parametrize("argv", cli_commands(), ids=" ".join)
def test_every_command_answers_help(argv, capsys):
    from vislearn.__main__ import main

    try:
        code = main([*argv, "--help"])
    except SystemExit as e:  # argparse's --help exits
        code = e.code
    assert code == 0
    out = capsys.readouterr().out
    assert "usage:" in out and "vislearn" in out


def test_listing_names_every_family_and_command():
    r = subprocess.run([sys.executable, "-m", "vislearn", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for argv in cli_commands():
        if len(argv) <= 2:
            assert f" {argv[-1]} " in r.stdout or f" {argv[-1]}:" in r.stdout, argv
    light = subprocess.run([sys.executable, "-c", "import sys; from vislearn.__main__ import listing; listing(); "
                            "print('torch' in sys.modules)"], capture_output=True, text=True, timeout=120)
    assert light.stdout.strip() == "False", "listing the commands imports torch"


def test_unknown_family_or_command_is_one_line(tmp_path):
    for argv in (["nope"], ["video", "nope"], []):
        r = subprocess.run([sys.executable, "-m", "vislearn", *argv], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2
        if argv:
            assert r.stderr.count("\n") == 1 and "error:" in r.stderr and "nope" in r.stderr
    r = subprocess.run([sys.executable, "-m", "vislearn.video", "train", "--help"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "vislearn video train" in r.stdout
