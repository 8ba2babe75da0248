"""The Rust core's layers, read from the source: every module uses only the layers below its own.

`rust/core/src/lib.rs` lists the layers, top to bottom, in a ```text block under "## Layers":
one line per layer, the modules of a layer separated by spaces. Every path a module names
(`use crate::..`, `use super::..`, `use self::..`, and paths written inline such as
`crate::schema::DEFAULT_ALPHA` or `super::plan::Plan`), test modules left out, must lead to a
module of a lower line. A module's own children count as what it names: `pub use plan::Plan` in
`engine/mod.rs` puts `engine::plan` below `engine`. So the layer list is the order, and an
upward use or a cycle (which needs an upward use) fails the test with the file and the path.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "rust" / "core" / "src"


def modules(src: Path) -> dict[str, Path]:
    """Module path (`engine::ingest`; `crate` for lib.rs) -> file."""
    out = {}
    for path in sorted(src.rglob("*.rs")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1].startswith("test"):
            continue  # test-only modules (`#[cfg(test)] mod tests;`) may use anything
        if parts == ["lib"]:
            out["crate"] = path
            continue
        if parts[-1] == "mod":
            parts.pop()
        out["::".join(parts)] = path
    return out


def layers(src: Path) -> list[list[str]]:
    """The layer lines of lib.rs's `## Layers` block, top first."""
    doc = "\n".join(
        line[3:].removeprefix(" ")
        for line in (src / "lib.rs").read_text(encoding="utf-8").splitlines()
        if line.startswith("//!")
    )
    m = re.search(r"## Layers.*?```text\n(.*?)```", doc, re.S)
    assert m, "lib.rs has no '## Layers' block with a ```text list"
    return [line.split() for line in m.group(1).splitlines() if line.strip()]


# Leftmost first, so that a quote inside a comment or a `//` inside a string is not misread.
_NOISE = re.compile(
    r"//[^\n]*"  # line comment
    r"|/\*.*?\*/"  # block comment
    r'|\br(#*)".*?"\1'  # raw string
    r'|"(?:\\.|[^"\\])*"'  # string
    r"|'(?:\\[^']{1,10}|[^'\\\n])'",  # char literal (a lifetime has no closing quote)
    re.S,
)


def code(path: Path) -> str:
    """The file without comments, string literals and `#[cfg(test)]` modules."""
    text = _NOISE.sub(lambda m: '""' if m.group(0)[-1] in '"#' else " ", path.read_text("utf-8"))
    cut = re.search(r"#\[cfg\(test\)\]\s*(pub(\([a-z]+\))?\s+)?mod\s+\w+\s*[{;]", text)
    return text[: cut.start()] if cut else text


def expand(tree: str) -> list[str]:
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e']; `self` in a group is the prefix."""
    tree = re.sub(r"\s+as\s+\w+", "", tree)
    tree = re.sub(r"\s+", "", tree)
    i = tree.find("{")
    if i < 0:
        return [tree]
    prefix, body = tree[:i], tree[i + 1 : tree.rindex("}")]
    items, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
            continue
        depth += (ch == "{") - (ch == "}")
        cur += ch
    items.append(cur)
    return [
        prefix.rstrip(":") if sub == "self" else prefix + sub
        for item in items
        if item
        for sub in expand(item)
    ]


_USE = re.compile(r"\buse\s+([^;]+);")
_INLINE = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_]\w*)+)")


def named_paths(name: str, path: Path, mods: set[str]) -> list[list[str]]:
    """Every path into the crate that module `name` names, as absolute segments."""
    text = code(path)
    here = [] if name == "crate" else name.split("::")
    raw: list[str] = []
    for m in _USE.finditer(text):
        raw += expand(m.group(1))
    rest = _USE.sub("", text)
    raw += [m.group(1) + m.group(2) for m in _INLINE.finditer(rest)]
    out = []
    for used in raw:
        segs = [s for s in used.split("::") if s]
        if not segs:
            continue
        if segs[0] == "crate":
            segs = segs[1:]
        elif segs[0] in ("self", "super"):
            base = list(here)
            while segs and segs[0] in ("self", "super"):
                if segs[0] == "super":
                    base = base[:-1]
                segs = segs[1:]
            segs = base + segs
        elif "::".join([*here, segs[0]]) in mods:
            segs = here + segs  # a child module of this one, named without `self::`
        else:
            continue  # another crate: std, arrow, serde, ...
        out.append(segs)
    return out


def owner(segs: list[str], mods: set[str]) -> str:
    """The deepest module that the path goes through."""
    for k in range(len(segs), 0, -1):
        if "::".join(segs[:k]) in mods:
            return "::".join(segs[:k])
    return "crate"


def violations(src: Path) -> list[str]:
    mods = modules(src)
    names = set(mods)
    order = layers(src)
    level = {m: i for i, line in enumerate(order) for m in line}
    problems = []
    missing = sorted(names - set(level) - {"crate"})
    if missing:
        problems.append(f"lib.rs's layer list lacks {missing}")
    unknown = sorted(set(level) - names)
    if unknown:
        problems.append(f"lib.rs's layer list names modules with no file: {unknown}")
    for name, path in mods.items():
        if name == "crate" or name not in level:
            continue  # lib.rs declares and re-exports; it is the top
        for segs in named_paths(name, path, names):
            target = owner(segs, names)
            if target == name or target == "crate" or target not in level:
                continue
            if level[target] <= level[name]:
                problems.append(
                    f"{path.relative_to(src)} ({name}, layer {level[name]}) uses "
                    f"{'::'.join(segs)} of {target} (layer {level[target]}): not below it"
                )
    return problems


# -- the reader itself ---------------------------------------------------------------------------


def _crate(tmp_path: Path, files: dict[str, str], order: str) -> Path:
    src = tmp_path / "src"
    for rel, text in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    lib = "".join(f"//! {line}\n" for line in ["## Layers", "", "```text", *order.split("\n")])
    (src / "lib.rs").write_text(lib + "//! ```\npub mod engine;\npub mod report;\n")
    return src


def test_the_reader_finds_upward_uses_of_every_form(tmp_path):
    files = {
        "engine/mod.rs": "mod plan;\npub use plan::Plan;\npub struct Engine;\n",
        "engine/plan.rs": "pub struct Plan;\n// use crate::report::x; a comment\n"
        'const S: &str = "crate::report::Analysis";\n'
        "#[cfg(test)]\nmod tests {\n    use crate::report::Analysis;\n}\n",
        "report.rs": "use crate::engine::{Engine,\n    plan::Plan as P};\n",
    }
    src = _crate(tmp_path, files, "report\nengine\nengine::plan")
    assert violations(src) == []
    # an inline path upwards, in code
    (src / "engine" / "plan.rs").write_text("fn f() { let _ = crate::report::g(); }\n")
    assert [p.split(" uses ")[1].split(" of ")[0] for p in violations(src)] == ["report::g"]
    # `super::` from a child to its parent's own items is upward when the parent sits above
    (src / "engine" / "plan.rs").write_text("use super::Engine;\n")
    assert len(violations(src)) == 1
    # two modules of one layer may not use each other either
    src2 = _crate(tmp_path / "b", files, "report engine engine::plan")
    assert any("report.rs" in p for p in violations(src2))
    # every module must be placed
    src3 = _crate(tmp_path / "c", files, "report\nengine")
    assert any("lacks ['engine::plan']" in p for p in violations(src3))


def test_expand_use_groups():
    assert expand("crate::a::{b, c::{d, e as f}, self}") == [
        "crate::a::b",
        "crate::a::c::d",
        "crate::a::c::e",
        "crate::a",
    ]


# -- the core ------------------------------------------------------------------------------------


def test_the_core_lists_every_module_in_its_layers():
    names = set(modules(CORE)) - {"crate"}
    listed = {m for line in layers(CORE) for m in line}
    assert len(names) > 15  # the walk found the crate
    assert names == listed


@pytest.mark.parametrize("src", [CORE], ids=["rust/core/src"])
def test_the_core_uses_only_lower_layers(src):
    problems = violations(src)
    assert not problems, "\n".join(problems)
