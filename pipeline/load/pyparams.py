"""Parameters from a Python file, read with `ast` and never executed (DVC's `.py` params).

Module-level `NAME = <literal>` and `NAME: T = <literal>` become params; a class becomes a
nested mapping of its body's literal assignments and the `self.x = <literal>` lines of its
`__init__`. Anything that is not a literal (a call, arithmetic) is skipped, as DVC does.
"""

from __future__ import annotations

import ast
from typing import Any, TypeGuard


def parse_python_params(source: str, filename: str = "<params>") -> dict[str, Any]:
    """The params a Python source file defines; SyntaxError propagates to the caller."""
    return _body(ast.parse(source, filename=filename).body)


def _body(statements: list[ast.stmt]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for node in statements:
        if isinstance(node, ast.ClassDef):
            params[node.name] = _class(node)
            continue
        target, value = _assignment(node)
        if isinstance(target, ast.Name) and value is not None:
            _literal_into(params, target.id, value)
    return params


def _class(node: ast.ClassDef) -> dict[str, Any]:
    params = _body(node.body)
    init = next(
        (n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None
    )
    for statement in ast.walk(init) if init else ():
        if isinstance(statement, ast.stmt):
            target, value = _assignment(statement)
            if _is_self_attribute(target) and value is not None:
                _literal_into(params, target.attr, value)
    return params


def _is_self_attribute(node: ast.expr | None) -> TypeGuard[ast.Attribute]:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )


def _assignment(node: ast.stmt) -> tuple[ast.expr | None, ast.expr | None]:
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        return node.targets[0], node.value
    if isinstance(node, ast.AnnAssign):
        return node.target, node.value
    return None, None


def _literal_into(params: dict[str, Any], name: str, value: ast.expr) -> None:
    try:
        literal = ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return
    plain = _plain(literal)
    if plain is not _SKIP:
        params[name] = plain


_SKIP: Any = object()


def _plain(value: Any) -> Any:
    """The value as YAML/JSON types (tuples and sets become lists); _SKIP for bytes, complex."""
    if isinstance(value, (set, frozenset)):
        value = sorted(value, key=repr)
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return _SKIP if _SKIP in items else items
    if isinstance(value, dict):
        pairs = {str(k): _plain(v) for k, v in value.items()}
        return _SKIP if _SKIP in pairs.values() else pairs
    return value if value is None or isinstance(value, (str, int, float, bool)) else _SKIP
