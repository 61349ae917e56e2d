"""The documentation stays true: docstrings, the API reference, generated tables and every code block.

None of this needs MkDocs (``pip install .[test]`` is enough); the site build
itself, ``mkdocs build --strict``, runs in CI.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, NamedTuple

import pytest

import pyrovae

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PENDING = DOCS / "pending"  # pages of features not merged yet: neither built nor run
API_PAGE = DOCS / "api.md"
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
SNIPPET = re.compile(r'^--8<--\s+"(?P<path>[^"]+)"\s*$')


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pages() -> List[Path]:
    return [p for p in sorted(DOCS.rglob("*.md")) if PENDING not in p.parents]


# -- docstrings and the API reference ---------------------------------------------------------

def _public_methods(cls: type) -> Iterator[str]:
    """Public functions and properties defined in ``cls`` itself (not inherited)."""
    for name, value in vars(cls).items():
        func = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
        if not name.startswith("_") and inspect.isfunction(func) and func.__qualname__.startswith(cls.__qualname__):
            yield name


def _attribute_docstring(name: str) -> str:
    """The docstring under a module-level ``NAME = ...`` (or ``NAME: T = ...``) in the package."""
    for path in (ROOT / "pyrovae").rglob("*.py"):
        body = ast.parse(path.read_text(encoding="utf-8")).body
        for stmt, following in zip(body, body[1:]):
            target = stmt.target if isinstance(stmt, ast.AnnAssign) else (
                stmt.targets[0] if isinstance(stmt, ast.Assign) else None)
            if isinstance(target, ast.Name) and target.id == name:
                if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
                    return str(following.value.value)
    return ""


def _docstring(name: str) -> str:
    obj = getattr(pyrovae, name)
    if inspect.isclass(obj) or inspect.isfunction(obj):
        return inspect.getdoc(obj) or ""
    return _attribute_docstring(name)  # a registry or other object: its own docstring is its type's


@pytest.mark.parametrize("name", pyrovae.__all__)
def test_public_name_has_a_docstring(name):
    assert _docstring(name).strip(), f"pyrovae.{name} has no docstring"
    obj = getattr(pyrovae, name)
    if inspect.isclass(obj):
        missing = [m for m in _public_methods(obj) if not inspect.getdoc(getattr(obj, m))]
        assert not missing, f"public methods of pyrovae.{name} without a docstring: {missing}"


FIELD = re.compile(r"^:(param|returns?|raises?)\b")


@pytest.mark.parametrize("name", pyrovae.__all__)
def test_docstring_fields_come_last(name):
    """The API reference (Sphinx-style parsing) would fold prose after ``:param:`` into the last field."""
    obj = getattr(pyrovae, name)
    members = [obj] + ([getattr(obj, m) for m in _public_methods(obj)] if inspect.isclass(obj) else [])
    for member in members:
        lines = (inspect.getdoc(member) or "").splitlines()
        first = next((i for i, line in enumerate(lines) if FIELD.match(line)), len(lines))
        paragraphs = [after for before, after in zip(lines[first:], lines[first + 1:])
                      if not before.strip() and after.strip() and not FIELD.match(after)]
        assert not paragraphs, f"{getattr(member, '__qualname__', name)}: prose after the fields: {paragraphs}"


@pytest.mark.parametrize("name", pyrovae.__all__)
def test_public_name_is_in_the_api_reference(name):
    obj = getattr(pyrovae, name)
    paths = {f"pyrovae.{name}"}
    if hasattr(obj, "__module__") and hasattr(obj, "__qualname__"):
        paths.add(f"{obj.__module__}.{obj.__qualname__}")
    entries = set(re.findall(r"^::: ([\w.]+)\s*$", API_PAGE.read_text(encoding="utf-8"), re.M))
    assert paths & entries, f"docs/api.md has no '::: pyrovae.{name}' entry"


# -- generated tables ---------------------------------------------------------------------------

@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_generated_blocks_are_current(page):
    text = page.read_text(encoding="utf-8")
    assert _hooks().render(text) == text, f"{page.relative_to(ROOT)} is stale: run `python docs/hooks.py`"


def test_registry_tables_are_generated():
    """The families, priors, likelihoods and estimators pages hold generated, not hand-written, tables."""
    blocks = {(p.name, m["name"]) for p in _pages() for m in _hooks().BLOCK.finditer(p.read_text(encoding="utf-8"))}
    for expected in [("families.md", "families"), ("families.md", "priors"), ("families.md", "likelihoods"),
                     ("families.md", "kl"), ("estimators.md", "estimators")]:
        assert expected in blocks, f"{expected[0]} has no generated '{expected[1]}' table"


# -- code blocks --------------------------------------------------------------------------------

class Block(NamedTuple):
    page: Path
    line: int
    code: str

    def __str__(self) -> str:
        return f"{self.page.relative_to(DOCS)}:{self.line}"


def _python_blocks() -> List[Block]:
    blocks = []
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            if m["lang"] in ("python", "py"):
                code = "\n".join(line[len(m["indent"]):] for line in m["body"].splitlines())
                blocks.append(Block(page, text.count("\n", 0, m.start()) + 1, code))
    return blocks


def _included_scripts(block: Block) -> List[str]:
    return [m["path"] for m in map(SNIPPET.match, block.code.splitlines()) if m]


BLOCKS = _python_blocks()
INLINE = [b for b in BLOCKS if not _included_scripts(b)]
INCLUDES = [b for b in BLOCKS if _included_scripts(b)]


@pytest.mark.parametrize("block", INLINE, ids=str)
def test_python_block_runs(block, tmp_path):
    """Each block runs as written, on its own, in a fresh interpreter in an empty folder."""
    # One thread: the blocks are small, and two-thread torch on shared cores is several times slower.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", block.code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"the python block at {block} failed:\n{proc.stderr[-3000:]}"


@pytest.mark.parametrize("block", INCLUDES, ids=str)
def test_included_script_runs_in_ci(block):
    """A block that shows a whole script includes it from examples/, which CI runs with --smoke."""
    assert len(block.code.strip().splitlines()) == 1, f"{block}: an include block holds the include only"
    (path,) = _included_scripts(block)
    script = ROOT / path
    assert script.parent == ROOT / "examples" and script.suffix == ".py", f"{block}: {path} is not in examples/"
    assert "--smoke" in script.read_text(encoding="utf-8"), f"{path} has no --smoke mode for CI"


def test_every_documented_import_path_imports():
    """docs/api.md draws the public boundary: every ``:::`` entry and every module it calls public imports."""
    import importlib

    text = API_PAGE.read_text(encoding="utf-8")
    for path in re.findall(r"^::: ([\w.]+)\s*$", text, re.M):
        parts = path.split(".")
        for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
            break
        else:
            pytest.fail(f"docs/api.md names {path}, which does not import")
    modules = re.findall(r"^\| `(pyrovae[\w.]*)` \|", text, re.M)
    assert "pyrovae.training" in modules and "pyrovae.options" in modules
    for module in modules:
        importlib.import_module(module)


def test_the_static_import_list_matches_the_lazy_table():
    """``pyrovae/__init__.py`` spells its public names twice (lazy table, TYPE_CHECKING imports for
    type checkers and the API reference); both must name the same objects."""
    import ast

    import pyrovae

    tree = ast.parse((ROOT / "pyrovae" / "__init__.py").read_text(encoding="utf-8"))
    static = {alias.name: node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
              and node.level == 1 and node.module for alias in node.names}
    assert static == pyrovae._EXPORTS
    assert sorted(static) == sorted(pyrovae.__all__)
