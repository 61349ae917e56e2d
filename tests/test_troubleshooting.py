"""docs/troubleshooting.md lists every message that pyrovae's errors and warnings can carry."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TROUBLESHOOTING = " ".join((ROOT / "docs" / "troubleshooting.md").read_text().split())  # lines may wrap
# Calls whose first argument is a message for the user.
RAISERS = {"PyroVAEError", "DivergenceError", "DistributedError", "MissingKLError", "unknown_name", "ArgumentTypeError", "warn",
           "explain"}
# Phrases of the divergence explanation, built from pieces rather than in one call.
DIVERGENCE = ["loss became", "gradients became non-finite", "parameters became non-finite",
              "the training step failed", "the KL term at site", "the reconstruction term log p(x|z)",
              "non-finite gradients in", "was finite, but", "overflowed", "is kept", "nothing was saved"]


def _name(func):
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)


def _messages():
    """``(place, literal pieces)`` of every message in the package."""
    for path in sorted((ROOT / "pyrovae").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and _name(node.func) in RAISERS and node.args:
                arg = node.args[0]
                parts = [arg] if isinstance(arg, ast.Constant) else getattr(arg, "values", [])
                pieces = [" ".join(p.value.split()).strip(" ;:,(") for p in parts
                          if isinstance(p, ast.Constant) and isinstance(p.value, str)]
                yield f"{path.relative_to(ROOT)}:{node.lineno}", [p for p in pieces if len(p) >= 8]


MESSAGES = dict(_messages())


def test_messages_were_found():
    assert len(MESSAGES) >= 70


@pytest.mark.parametrize("place", sorted(MESSAGES))
def test_every_error_message_is_documented(place):
    missing = [piece for piece in MESSAGES[place] if piece not in TROUBLESHOOTING]
    assert not missing, f"{place}: add to docs/troubleshooting.md: {missing}"


def test_divergence_explanations_are_documented():
    assert [p for p in DIVERGENCE if p not in TROUBLESHOOTING] == []
