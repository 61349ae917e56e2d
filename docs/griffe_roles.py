"""Griffe extension: turn the Sphinx roles of pyrovae's docstrings into Markdown for the API reference.

pyrovae's docstrings follow Pyro's Sphinx conventions (``:param x:``,
``:class:`~pyro.infer.Trace_ELBO```), which mkdocstrings parses (``docstring_style:
sphinx``) except for inline roles. Here ``:class:`~a.b.C``` becomes the code span
``C`` (``a.b.C`` without the tilde), ``:math:`x``` becomes ``$x$`` for MathJax,
and a reStructuredText literal ````x```` becomes ```x```.
"""

from __future__ import annotations

import re

from griffe import Extension, Object

ROLE = re.compile(r":(?:class|func|meth|attr|data|exc|obj|mod):`(?P<tilde>~?)(?P<target>[^`]+)`")
MATH = re.compile(r":math:`(?P<tex>[^`]+)`")
LITERAL = re.compile(r"``(?P<text>[^`]+)``")


def markdown_roles(text: str) -> str:
    """``text`` with Sphinx inline roles and double-backtick literals rewritten as Markdown."""
    text = MATH.sub(lambda m: f"${m['tex']}$", text)
    text = LITERAL.sub(lambda m: f"`{m['text']}`", text)
    return ROLE.sub(lambda m: f"`{m['target'].rsplit('.', 1)[-1] if m['tilde'] else m['target']}`", text)


class SphinxRoles(Extension):
    """Rewrite every loaded object's docstring with :func:`markdown_roles`."""

    def on_instance(self, *, obj: Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_roles(obj.docstring.value)
