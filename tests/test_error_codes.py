"""The README's error table is the API's: every transport-level code the API can emit is
listed with its status, and nothing else is."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from api.errors import STATUS, Code
from domain.errors import RULES

ROOT = Path(__file__).resolve().parent.parent


def readme_table() -> dict[str, int]:
    """The rows of the README's error table: code -> status."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("Every other code a client can get:")
    rows = re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|", text[start:], flags=re.MULTILINE)
    table = {code: int(status) for code, status in rows}
    assert len(table) == len(rows), "a code is listed twice"
    return table


def emitted_codes() -> set[str]:
    """Every ``Code.<name>`` the API's modules and the operations beneath them use, but
    in the enum and its status table themselves: the codes some path can answer with
    (``ApiError`` takes only a ``Code``, which the type checker holds it to)."""
    found: set[str] = set()
    for path in [*(ROOT / "api").glob("*.py"), *(ROOT / "operations").glob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped: set[int] = set()
        for node in ast.walk(tree):
            defines = (isinstance(node, ast.ClassDef) and node.name == "Code") or (
                isinstance(node, ast.AnnAssign | ast.Assign)
                and any(
                    isinstance(t, ast.Name) and t.id == "STATUS"
                    for t in ([node.target] if isinstance(node, ast.AnnAssign) else node.targets)
                )
            )
            if defines:
                skipped |= {id(n) for n in ast.walk(node)}
        for node in ast.walk(tree):
            if (
                id(node) not in skipped
                and isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "Code"
            ):
                found.add(node.attr)
    return found


def test_the_readme_lists_every_code_with_its_status() -> None:
    """The table and ``api.errors`` agree, code by code and status by status."""
    assert readme_table() == {code.value: STATUS[code] for code in Code}


def test_every_listed_code_is_emitted_somewhere() -> None:
    """No code in the table is dead: each is answered by some path of the API."""
    assert emitted_codes() == {code.value for code in Code}


def test_domain_rules_are_listed_where_the_readme_says() -> None:
    """The README points to ``domain/errors.py`` for the rules' names, and no rule's name
    is also a transport code (a client tells them apart by name)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "`domain/errors.py`" in text[text.index("**Errors**") :]
    assert not RULES & {code.value for code in Code}
    source = (ROOT / "domain" / "errors.py").read_text(encoding="utf-8")
    for rule in RULES:
        assert f'"{rule}"' in source
