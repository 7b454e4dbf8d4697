"""Running the engine under test through the micrograd protocol.

This module is what engine sandboxes import, so it stays light (no SymPy, no torch).
It builds a program's graph with the engine's own operators and methods (numbers
stay plain Python numbers, so ``3 - x`` really calls ``__rsub__``), calls
``backward()``, and reads ``.data`` and ``.grad`` back. Whatever the engine does
(raise, return None, return a complex number, recurse forever) becomes data in an
:class:`EngineOutcome`; it is never re-raised.

Example:
    >>> from engine import Value
    >>> from verifier.parsing import parse
    >>> from verifier.expr import compile_program
    >>> [outcome] = run(Value, compile_program(parse("x * x")), [(3.0,)])
    >>> outcome.status, outcome.value, outcome.gradient
    ('ok', 9.0, (6.0,))
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real
from typing import Any, Sequence

from verifier.expr import Program
from verifier.ops import OPS

__all__ = ["EngineOutcome", "probe", "run", "build", "describe_error"]

MAX_MESSAGE = 300


@dataclass(frozen=True)
class EngineOutcome:
    """What the engine did at one point.

    Attributes:
        status: ``ok``; ``exception`` (it raised); ``invalid`` (an op returned
            something that is not a Value, e.g. None, or ``.data``/``.grad`` was not
            a number).
        value: the output's ``.data`` as a float, ``complex`` if it was one, or None.
        gradient: each variable's ``.grad`` (None where unreadable).
        error: ``"TypeError: ..."`` for exceptions and invalid results.
        stage: ``forward`` or ``backward``: where it went wrong.
        node: the program node whose op raised or returned junk (forward only).
        node_values, node_grads: every node's ``.data`` and ``.grad`` (on request).
    """

    status: str
    value: float | complex | None
    gradient: tuple[float | complex | None, ...] | None
    error: str = ""
    stage: str = ""
    node: int | None = None
    node_values: tuple[Any, ...] | None = None
    node_grads: tuple[Any, ...] | None = None


def describe_error(error: BaseException) -> str:
    """``Type: message``, one line, bounded, safe even if ``str()`` itself fails."""
    try:
        message = str(error)
    except Exception:  # noqa: BLE001 - hostile __str__
        message = "<unprintable message>"
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def probe(engine: type) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The ops the engine supports and those it lacks (by its operators/methods).

    Example:
        >>> from engine import Value
        >>> supported, missing = probe(Value)
        >>> missing
        ()
    """
    supported, missing = [], []
    for name, op in OPS.items():
        has = all(callable(getattr(engine, attr, None)) for attr in op.dunders)
        (supported if has else missing).append(name)
    return tuple(supported), tuple(missing)


class _Junk(Exception):
    """An op returned something that is not a Value."""


def _number(x: Any) -> float | complex | None:
    if isinstance(x, bool):
        return float(x)
    if isinstance(x, Real):
        return float(x)
    if isinstance(x, complex):
        return x
    try:
        return float(x)
    except Exception:  # noqa: BLE001 - e.g. None, a tensor, a string
        return None


def _read(node: Any, attribute: str) -> float | complex | None:
    try:
        return _number(getattr(node, attribute))
    except RecursionError:
        raise
    except Exception:  # noqa: BLE001 - a property that raises counts as unreadable
        return None


def _describe_result(result: Any) -> str:
    if result is None:
        return "None"
    try:
        text = repr(result)
    except Exception:  # noqa: BLE001
        text = f"<{type(result).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def _not_a_value(result: Any) -> str:
    """Why ``result`` is not a Value ("" if it looks like one). A ``.data`` that
    raises counts as junk (like a ``.grad`` that raises), not as the op raising."""
    if result is None or isinstance(result, (int, float, complex)):
        return f"returned {_describe_result(result)} instead of a Value"
    try:
        _ = result.data
    except AttributeError:
        return f"returned {_describe_result(result)} instead of a Value (it has no .data)"
    except Exception as error:  # noqa: BLE001
        return f"returned a Value whose .data raised {describe_error(error)}"
    return ""


def build(engine: type, program: Program, leaves: Sequence[Any]) -> list[Any]:
    """Build ``program``'s graph with the engine's operators and methods over the
    given leaves (one per variable, in ``program.variables`` order); numbers stay
    plain numbers, so ``3 - x`` really calls ``__rsub__``.

    Returns every node's object, the output last. An op that raises, or returns
    something that is not a Value, raises with the failing node's index in
    ``.node``.

    Example:
        >>> from engine import Value
        >>> from verifier.parsing import parse
        >>> from verifier.expr import compile_program
        >>> x = Value(3.0)
        >>> out = build(Value, compile_program(parse("x * x")), [x])[-1]
        >>> out.backward(); x.grad
        6.0
    """
    built: list[Any] = []
    for i, (op, args, param) in enumerate(zip(program.ops, program.args, program.params)):
        if op == "var":
            built.append(leaves[param])
        elif op == "const":
            built.append(param)
        else:
            spec = OPS[op]
            argv = [built[j] for j in args]
            if all(isinstance(a, float) for a in argv) or spec.method:
                # Methods need a Value: wrap constant arguments as (gradient-free) leaves.
                argv = [engine(a) if isinstance(a, float) else a for a in argv]
            try:
                result = spec.engine(*argv, param)
            except BaseException as error:
                error.node = i  # type: ignore[attr-defined]
                raise
            problem = _not_a_value(result)
            if problem:
                error = _Junk(f"{op} {problem}")
                error.node = i  # type: ignore[attr-defined]
                raise error
            built.append(result)
    return built


def _build(engine: type, program: Program, point: Sequence[float]) -> tuple[list[Any], list[Any]]:
    leaves = [engine(float(x)) for x in point]
    return build(engine, program, leaves), leaves


def _evaluate(engine: type, program: Program, point: Sequence[float], record: bool) -> EngineOutcome:
    stage, built, value = "forward", [], None
    try:
        built, leaves = _build(engine, program, point)
        out = built[-1]
        value = _read(out, "data")
        if value is None:
            return EngineOutcome("invalid", None, None, f"output .data is {_describe_result(getattr(out, 'data', None))}, not a number", stage, program.output)
        stage = "backward"
        out.backward()
        gradient = tuple(_read(leaf, "grad") for leaf in leaves)
    except (KeyboardInterrupt, GeneratorExit):
        raise
    except BaseException as error:  # noqa: BLE001 - SystemExit from a hostile engine too
        if isinstance(error, _Junk):
            return EngineOutcome("invalid", value, None, str(error), stage, error.node, *_nodes(built, record))  # type: ignore[attr-defined]
        return EngineOutcome("exception", value, None, describe_error(error), stage, getattr(error, "node", None), *_nodes(built, record))
    if any(g is None for g in gradient):
        return EngineOutcome("invalid", value, gradient, ".grad of a leaf is not a number", stage, None, *_nodes(built, record))
    return EngineOutcome("ok", value, gradient, "", "", None, *_nodes(built, record))


def _nodes(built: list[Any], record: bool) -> tuple[Any, Any]:
    if not record:
        return None, None
    values = tuple(n if isinstance(n, float) else _read(n, "data") for n in built)
    grads = tuple(None if isinstance(n, float) else _read(n, "grad") for n in built)
    return values, grads


def run(engine: type, program: Program, points: Sequence[Sequence[float]], *, record: bool = False) -> list[EngineOutcome]:
    """Evaluate ``program`` with ``engine`` at each point (a fresh graph per point).

    Args:
        record: also return every node's ``.data`` and ``.grad`` (for blame).
    """
    return [_evaluate(engine, program, point, record) for point in points]

