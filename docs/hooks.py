"""MkDocs hook: fill the generated blocks of the documentation from pyrovae's registries.

A page marks a block with two HTML comments (invisible when rendered)::

    <!-- generated: families -->
    ...whatever is there is replaced...
    <!-- end generated -->

``families``, ``priors``, ``likelihoods``, ``estimators``, ``kl`` and ``names`` are
the Markdown tables of :mod:`pyrovae.tables`; ``cli-families`` and ``cli-kl-table``
are what ``pyrovae families [--kl-table]`` prints. The site build renders every
block afresh (``on_page_markdown``), so the site cannot drift from the
registries. The committed Markdown holds the same text so that it reads well
on its own; ``tests/test_docs.py`` fails when it is stale, and

    python docs/hooks.py

rewrites it. This file imports no MkDocs code, so the tests run without the
``docs`` extra.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Callable, Dict

ROOT = Path(__file__).resolve().parents[1]
# Document the checkout, not whatever pyrovae happens to be installed.
sys.path.insert(0, str(ROOT))

from pyrovae import tables  # noqa: E402
from pyrovae.cli import families_text  # noqa: E402

BLOCK = re.compile(r"(?P<open><!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(?P<close><!-- end generated -->)",
                   re.S)

# How each registry table is formatted: which columns are code, which are lists of names.
_MARKDOWN = {
    "families": {"code": (0, 2, 3)},
    "priors": {"code": (0, 1)},
    "likelihoods": {"code": (0, 1)},
    "estimators": {"code": (0, 3)},
    "kl": {"code": (0,)},
    "names": {"code": (2,), "lists": (1,)},
}


def _cli(command: str, output: str) -> str:
    return f"```text\n$ {command}\n{output}\n```"


GENERATORS: Dict[str, Callable[[], str]] = {
    **{name: (lambda name=name: tables.markdown_table(*tables.TABLES[name](), **_MARKDOWN[name]))
       for name in tables.TABLES},
    "cli-families": lambda: _cli("pyrovae families", families_text()),
    "cli-kl-table": lambda: _cli("pyrovae families --kl-table", families_text(kl=True)),
}
"""Block name -> the Markdown it holds."""


def render(markdown: str) -> str:
    """``markdown`` with every generated block filled in; an unknown block name raises ``KeyError``."""
    def fill(m: re.Match) -> str:
        return m["open"] + GENERATORS[m["name"]]() + "\n" + m["close"]

    return BLOCK.sub(fill, markdown)


def on_page_markdown(markdown: str, **kwargs) -> str:
    """MkDocs event: render the page's generated blocks before it is converted to HTML."""
    return render(markdown)


def rewrite(docs: Path = ROOT / "docs") -> list:
    """Bring every page under ``docs`` up to date; return the pages that changed."""
    changed = []
    for page in sorted(docs.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        if render(text) != text:
            page.write_text(render(text), encoding="utf-8")
            changed.append(page)
    return changed


if __name__ == "__main__":
    for page in rewrite():
        print(f"updated {page.relative_to(ROOT)}")
