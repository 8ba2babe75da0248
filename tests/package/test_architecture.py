"""The layout's rules, read from the source: modules import downwards only, never in a circle.

Python: every module of the package is parsed with `ast`, and every import statement in it, at
module level, inside functions or under `if TYPE_CHECKING`, becomes an edge to the module it names
(`from pkg import name` names the submodule pkg.name when there is one). The graph must have no
cycle. Imports done by string (`importlib.import_module`, the CLI's lazy commands) are not edges.

The Rust core's layers are checked the same way, from its `use` paths, in
test_architecture_rust.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "python" / "valuescope"


# -- graphs -----------------------------------------------------------------------------------


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph as a path [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_find_cycle_finds_cycles_and_only_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None  # a diamond
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": {"y"}, "y": {"y"}}) == ["y", "y"]


# -- Python -------------------------------------------------------------------------------------


def python_modules(package: Path) -> dict[str, Path]:
    """Module name -> file; a native module (valuescope._core) by its .pyi stub."""
    paths = [*package.rglob("*.py")]
    paths += [p for p in package.rglob("*.pyi") if not p.with_suffix(".py").exists()]
    mods = {}
    for path in paths:
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def python_imports(name: str, path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `name` imports anywhere in its body."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()

    def known(target: str) -> str | None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.add(known(alias.name) or "")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                out.add(sub if sub in modules else known(source) or "")
    out.discard("")
    out.discard(name)
    return out


def python_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    mods = python_modules(package)
    return {name: python_imports(name, path, set(mods)) for name, path in mods.items()}


def test_python_import_reader_sees_every_kind_of_import(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub import leaf\n")
    (pkg / "sub" / "leaf.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pkg import top\n"
        "def f():\n    from . import other\n    import pkg.sub.other\n"
    )
    (pkg / "sub" / "other.py").write_text("from ..top import X\n")
    (pkg / "top.py").write_text("import json\nfrom pkg.sub.leaf import f\n")
    g = python_graph(pkg)
    assert g["pkg.sub"] == {"pkg.sub.leaf"}
    assert g["pkg.sub.leaf"] == {"pkg.top", "pkg.sub.other"}
    assert g["pkg.sub.other"] == {"pkg.top"}
    assert g["pkg.top"] == {"pkg.sub.leaf"}
    assert find_cycle(g) == ["pkg.sub.leaf", "pkg.sub.other", "pkg.top", "pkg.sub.leaf"]


def test_the_package_has_no_import_cycle():
    graph = python_graph()
    assert len(graph) > 40 and "valuescope.cli" in graph  # the walk found the package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_stages_do_not_import_the_layers_above_them():
    """The CLI and the pipeline sit on top of the stages; no stage reaches up to them."""
    above = ("valuescope.cli", "valuescope.pipeline")
    for name, deps in python_graph().items():
        if name.startswith(above) or name == "valuescope.__main__":  # the entry point
            continue
        up = sorted(d for d in deps if d.startswith(above))
        assert not up, f"{name} imports {up}"


#: What each stage may import of the other stages. A stage talks to the next through files
#: (layout.py names them), and what two stages share sits below them all (schema, layout, errors,
#: _http, providers, features, ...). validate re-runs the extraction's calls to measure them and
#: writes the report's Validity section, so it alone builds on two stages.
STAGE_IMPORTS = {
    "extract": set(),
    "taxonomy": set(),
    "analyze": set(),
    "report": set(),
    "validate": {"extract", "report"},
    # diff reads two analyses' published files, with only the shared helpers below the stages
    "diff": set(),
}


def test_stages_talk_through_files_not_imports():
    for name, deps in python_graph().items():
        parts = name.split(".")
        if len(parts) < 2 or parts[1] not in STAGE_IMPORTS:
            continue
        stage = parts[1]
        others = {d.split(".")[1] for d in deps if d.split(".")[1:2] != [stage]}
        reached = sorted((others & STAGE_IMPORTS.keys()) - STAGE_IMPORTS[stage])
        assert not reached, f"{name} imports the stage(s) {reached}"


# -- one error base, one public API -------------------------------------------------------------


def test_every_error_of_valuescope_has_one_base():
    import valuescope
    from valuescope import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.ValuescopeError), name
    assert errors.SchemaError is valuescope._core.SchemaError
    assert issubclass(errors.SchemaError, ValueError)  # what callers caught before the base
    assert issubclass(errors.ParquetReadError, OSError)
    assert issubclass(errors.InputError, ValueError)
    assert issubclass(errors.InputError, errors.UserError)
    assert issubclass(errors.ExtractError, errors.UserError)
    assert errors.UserError.exit_code == 2 and errors.ExtractIncomplete.exit_code == 3
    with pytest.raises(errors.ValuescopeError, match="missing required column"):
        valuescope.Engine().feed(__import__("pyarrow").table({"conversation_id": ["a"]}))


def test_the_public_api_resolves_and_the_stages_load_only_when_asked():
    import subprocess
    import sys

    import valuescope

    for name in valuescope.__all__:
        assert getattr(valuescope, name) is not None, name
    with pytest.raises(AttributeError):
        valuescope.no_such_name  # noqa: B018
    code = (
        "import sys, valuescope; "
        "print(sorted(m for m in sys.modules if m.startswith('valuescope.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['valuescope._core', 'valuescope.errors']", out.stdout
