"""MkDocs hook: fill the generated blocks of the documentation from pyrovae's registries.

A page marks a block with two HTML comments (invisible when rendered)::

    <!-- generated: families -->
    ...whatever is there is replaced...
    <!-- end generated -->

``families``, ``priors``, ``likelihoods``, ``estimators``, ``kl`` and ``names`` are
the Markdown tables of :mod:`pyrovae.tables`; ``cli-families`` and ``cli-kl-table``
are what ``pyrovae families [--kl-table]`` prints; ``train-options`` is every option of
:class:`pyrovae.config.RunConfig` as its declaration states it. The site build renders every
block afresh (``on_page_markdown``), so the site cannot drift from the
registries. The committed Markdown holds the same text so that it reads well
on its own; ``tests/test_docs.py`` fails when it is stale, and

    python docs/hooks.py

rewrites it. This file imports no MkDocs code at import time, so the tests run
without the ``docs`` extra.

The site also serves its own MathJax (``on_files``): the renderer, its TeX
extensions and fonts are copied from the ``django-static-mathjax`` package of the
``docs`` extra (MathJax 3, Apache-2.0), so every formula renders without a
network connection.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Callable, Dict, Iterator

ROOT = Path(__file__).resolve().parents[1]
# Document the checkout, not whatever pyrovae happens to be installed.
sys.path.insert(0, str(ROOT))

from pyrovae import tables  # noqa: E402
from pyrovae.cli import families_text  # noqa: E402
from pyrovae.config import RunConfig  # noqa: E402
from pyrovae.options import options_table  # noqa: E402

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
    "train-options": lambda: tables.markdown_table(*options_table(RunConfig), code=(0,)),
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


#: Where the site serves MathJax from (``extra_javascript`` in mkdocs.yml loads ``tex-chtml.js`` there).
MATHJAX_URL = "javascripts/mathjax"
#: What the site needs of the MathJax distribution: the TeX-to-HTML component, the TeX extensions it
#: loads on demand (``\boldsymbol``, ``\cancel``, ...), its web fonts, the menu and accessibility
#: modules it may load, and the licence. The speech engine (``sre/``, 4 MB) is left out.
MATHJAX_FILES = ("LICENSE", "es5/tex-chtml.js", "es5/input/tex/extensions/*.js",
                 "es5/output/chtml/fonts/woff-v2/*.woff", "es5/ui/*.js", "es5/a11y/*.js")


def mathjax_files() -> Iterator[tuple]:
    """``(source path, site path)`` of every MathJax file the site serves, from the installed package."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the docs need MathJax from the django-static-mathjax package: pip install '.[docs]'")
    root = Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax"
    for pattern in MATHJAX_FILES:
        for path in sorted(root.glob(pattern)):
            relative = path.relative_to(root)
            site = relative.relative_to("es5") if relative.parts[0] == "es5" else relative
            yield path, f"{MATHJAX_URL}/{site.as_posix()}"


def on_files(files, config, **kwargs):
    """MkDocs event: add the MathJax files to the site, so its formulas render offline."""
    from mkdocs.structure.files import File  # the docs extra's; the tests import this module without it

    for source, site in mathjax_files():
        files.append(File.generated(config, site, abs_src_path=str(source)))
    return files


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
