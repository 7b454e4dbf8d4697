"""Op definitions from the command line, a TOML file or ``pyproject.toml``.

The CLI's ``--op 'softplus(x) = log(1 + exp(x))'`` and the pytest plugin's
``--verifier-op`` take one definition as text; ``--ops-file ops.toml`` and the
``[tool.crossgrad.ops]`` table of ``pyproject.toml`` take tables, one per op::

    [ops.softplus]
    formula = "log(1 + exp(x))"

    [ops.maximum]          # no formula: the library's maximum,
    method = "max"         # which this engine calls x.max(y)

    [ops.mylog]
    formula = "log(x)"
    domain = ["x > 0.5"]   # declared where SymPy cannot tell
    monotone = true
    relations = ["mylog(x*x) == 2*mylog(x)"]   # identities the property suites check

Every mistake is one line naming the file, the op and the bad value.

Example:
    >>> define_from_text("cube(x) = x**3").derivatives
    ('3*x**2',)
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from verifier.define import OpDefinition, define_op
from verifier.formula import parse_definition

__all__ = ["define_from_text", "define_from_file", "define_from_tables", "define_from_pyproject"]

_KEYS: dict[str, tuple[type, ...]] = {
    "formula": (str,), "method": (str,), "arguments": (list,), "domain": (list,), "kinks": (list,),
    "monotone": (bool,), "stable": (str,), "conventions": (str,), "relations": (list,), "torch": (str,),
}


def define_from_text(text: str) -> OpDefinition:
    """``"name(x) = formula"``, or the bare name of a library op (``"gelu"``)."""
    if isinstance(text, str) and "=" not in text and "(" not in text:
        return define_op(text.strip())
    name, arguments, formula = parse_definition(text)
    return define_op(name, formula, arguments=arguments)


def define_from_tables(tables: Any, where: str) -> tuple[OpDefinition, ...]:
    """One op per ``{name: {formula = ..., ...}}`` entry (``where`` names the source in errors)."""
    if not isinstance(tables, dict):
        raise ValueError(f"{where}: expected a table of ops ([ops.NAME] sections), got {type(tables).__name__}")
    defined = []
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ValueError(f"{where}: ops.{name} must be a table (formula = \"...\"), got {table!r}")
        for key, value in table.items():
            if key not in _KEYS:
                raise ValueError(f"{where}: ops.{name}: unknown key {key!r}; expected some of {', '.join(_KEYS)}")
            if not isinstance(value, _KEYS[key]) or key in ("arguments", "domain", "kinks", "relations") and not all(isinstance(v, str) for v in value):
                want = "a list of strings" if _KEYS[key] == (list,) else _KEYS[key][0].__name__
                raise ValueError(f"{where}: ops.{name}.{key} = {value!r}: expected {want}")
        options = dict(table)
        formula = options.pop("formula", None)
        try:
            defined.append(define_op(name, formula, **options))
        except ValueError as error:
            raise ValueError(f"{where}: ops.{name}: {error}") from None
    return tuple(defined)


def define_from_file(path: str | Path) -> tuple[OpDefinition, ...]:
    """Every op of a TOML file's ``[ops.NAME]`` tables."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"ops file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"ops file {str(path)!r} is not readable TOML ({error})") from None
    if set(data) - {"ops"} or "ops" not in data:
        raise ValueError(f"ops file {str(path)!r}: expected only [ops.NAME] tables, found {', '.join(sorted(data)) or 'nothing'}")
    return define_from_tables(data["ops"], str(path))


def define_from_pyproject(path: str | Path) -> tuple[OpDefinition, ...]:
    """The ops of ``[tool.crossgrad.ops]`` in a ``pyproject.toml`` (none if absent)."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return ()  # not ours to judge: pytest reads it too
    tables = data.get("tool", {}).get("crossgrad", {}).get("ops")
    return () if tables is None else define_from_tables(tables, f"{path} [tool.crossgrad.ops]")
