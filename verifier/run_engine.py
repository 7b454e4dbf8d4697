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

from dataclasses import dataclass, replace
from typing import Any, Sequence

from verifier.expr import Program
from verifier.ops import OPS

__all__ = ["EngineOutcome", "probe", "run", "run_plain", "build", "describe_error", "plain_number", "plain_text"]

MAX_MESSAGE = 300
STATUSES = ("ok", "exception", "invalid")


def plain_number(x: Any) -> float | complex | None:
    """``x`` as an exact ``float`` or ``complex`` if it is one (or a subclass of one),
    else None. Reads the stored number at C level, so no method of a subclass runs:
    only builtin types may cross to the parent (a subclass could carry a hostile
    ``__reduce__`` into its unpickler).

    Example:
        >>> class Sneaky(complex): pass
        >>> type(plain_number(Sneaky(1, 2))), plain_number("1.0")
        (<class 'complex'>, None)
    """
    kind = type(x)  # not isinstance: a __class__ property can fake that
    if kind is float or kind is complex:
        return x
    if issubclass(kind, float):
        return float.__float__(x)
    if issubclass(kind, complex):
        return complex(complex.real.__get__(x), complex.imag.__get__(x))
    return None


def plain_text(x: Any) -> str:
    """``x`` as an exact ``str`` (a copy, if it is a subclass; ``"?"`` if not a string).

    Example:
        >>> class Loud(str): pass
        >>> type(plain_text(Loud("hi"))), plain_text(3)
        (<class 'str'>, '?')
    """
    return str.__str__(x) if issubclass(type(x), str) else "?"


def _type_name(x: Any) -> str:
    # type's own getter: a metaclass may define a __name__ property that raises.
    return plain_text(type.__dict__["__name__"].__get__(type(x)))


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
        hessian: at order 2 (on request), row ``i`` is what ``backward()`` of the
            ``.grad`` of variable ``i`` left in every variable's ``.grad``, after
            ``backward(create_graph=True)`` (a ``.grad`` that is a number is a
            constant: its row is 0).
        tangents: in forward mode (on request), entry ``k`` is the output's
            ``.tangent`` when variable ``k`` has tangent 1 and the others 0.
        hessian_error, tangent_error: ``"stage: Type: message"`` where that failed.
    """

    status: str
    value: float | complex | None
    gradient: tuple[float | complex | None, ...] | None
    error: str = ""
    stage: str = ""
    node: int | None = None
    node_values: tuple[Any, ...] | None = None
    node_grads: tuple[Any, ...] | None = None
    hessian: tuple[tuple[float | complex | None, ...], ...] | None = None
    tangents: tuple[float | complex | None, ...] | None = None
    hessian_error: str = ""
    tangent_error: str = ""

    def to_tuple(self) -> tuple:
        """The outcome as a tuple of exact builtin values (what the sandbox sends)."""
        def numbers(xs: Any) -> tuple | None:
            return None if xs is None else tuple(plain_number(x) for x in xs)

        node = self.node if type(self.node) is int else None
        hessian = None if self.hessian is None else tuple(numbers(row) for row in self.hessian)
        return (plain_text(self.status), plain_number(self.value), numbers(self.gradient), plain_text(self.error),
                plain_text(self.stage), node, numbers(self.node_values), numbers(self.node_grads),
                hessian, numbers(self.tangents), plain_text(self.hessian_error), plain_text(self.tangent_error))

    @classmethod
    def from_tuple(cls, data: Any) -> EngineOutcome:
        """Rebuild an outcome from :meth:`to_tuple`'s form, checking every type.

        Raises:
            ValueError: ``data`` is not such a tuple (a garbled or forged answer).

        Example:
            >>> EngineOutcome.from_tuple(("ok", 1.0, (2.0,), "", "", None, None, None, None, None, "", "")).gradient
            (2.0,)
            >>> EngineOutcome.from_tuple(("ok", "1.0", None, "", "", None, None, None, None, None, "", ""))
            Traceback (most recent call last):
            ...
            ValueError: not an engine outcome: field 1 is a str
        """
        if type(data) is not tuple or len(data) != 12:
            raise ValueError(f"not an engine outcome: a {_type_name(data)}")
        status, value, gradient, error, stage, node, values, grads, hessian, tangents, hessian_error, tangent_error = data
        for ok, field, x in (
            (type(status) is str and status in STATUSES, 0, status),
            (_is_number(value), 1, value),
            (_are_numbers(gradient), 2, gradient),
            (type(error) is str and type(stage) is str, 3, error),
            (node is None or (type(node) is int and node >= 0), 5, node),
            (_are_numbers(values) and _are_numbers(grads), 6, values),
            (hessian is None or (type(hessian) is tuple and all(type(row) is tuple and _are_numbers(row) for row in hessian)), 8, hessian),
            (_are_numbers(tangents), 9, tangents),
            (type(hessian_error) is str and type(tangent_error) is str, 10, hessian_error),
        ):
            if not ok:
                raise ValueError(f"not an engine outcome: field {field} is a {_type_name(x)}")
        return cls(status, value, gradient, error, stage, node, values, grads, hessian, tangents, hessian_error, tangent_error)


def _is_number(x: Any) -> bool:
    return x is None or type(x) is float or type(x) is complex


def _are_numbers(xs: Any) -> bool:
    return xs is None or (type(xs) is tuple and all(_is_number(x) for x in xs))


def describe_error(error: BaseException) -> str:
    """``Type: message``, one line, bounded, safe even if ``str()`` itself fails."""
    try:
        message = plain_text(str(error))  # a hostile __str__ may return a str subclass
    except Exception:  # noqa: BLE001 - hostile __str__
        message = "<unprintable message>"
    name = _type_name(error)
    text = f"{name}: {message}" if message else name
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def probe(engine: type) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The ops the engine supports and those it lacks (by its operators/methods).

    Raises:
        verifier.loader.EngineLoadError: the class has no callable ``backward``: it
            is not an autograd engine (one line, rather than every op failing).

    Example:
        >>> from engine import Value
        >>> supported, missing = probe(Value)
        >>> missing
        ()
        >>> probe(float)
        Traceback (most recent call last):
        ...
        verifier.loader.EngineLoadError: engine class 'float' has no backward() method: expected a micrograd-compatible Value class (.data, .grad, .backward())
    """
    try:
        backward = getattr(engine, "backward", None)
    except Exception:  # noqa: BLE001 - a hostile metaclass: treat as missing
        backward = None
    if not callable(backward):
        from verifier.loader import EngineLoadError

        try:
            name = plain_text(engine.__qualname__)
        except Exception:  # noqa: BLE001
            name = "?"
        has = "no backward() method" if backward is None else f"a backward that is not callable ({_type_name(backward)})"
        raise EngineLoadError(f"engine class {name!r} has {has}: expected a micrograd-compatible "
                              "Value class (.data, .grad, .backward())")
    supported, missing = [], []
    for name, op in OPS.items():
        has = all(callable(getattr(engine, attr, None)) for attr in op.dunders)
        (supported if has else missing).append(name)
    return tuple(supported), tuple(missing)


class _Junk(Exception):
    """An op returned something that is not a Value."""


def _number(x: Any) -> float | complex | None:
    """An exact float or complex (see :func:`plain_number`), or None."""
    number = plain_number(x)
    if number is not None:
        return number
    if issubclass(type(x), int):
        return int.__float__(x)  # bool too; OverflowError for a huge int: unreadable
    if issubclass(type(x), str):
        return None  # float("1.5") would read a string as a number
    try:
        number = float(x)  # Fraction, Decimal, a 0-d tensor...
    except Exception:  # noqa: BLE001 - e.g. None, a tensor, a string
        return None
    return plain_number(number)  # __float__ may return a float subclass


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
        text = plain_text(repr(result))
    except Exception:  # noqa: BLE001
        text = f"<{_type_name(result)}>"
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


def _evaluate(engine: type, program: Program, point: Sequence[float], record: bool) -> tuple:
    """One point's outcome, in plain form (:meth:`EngineOutcome.to_tuple`)."""
    stage, built, value = "forward", [], None
    try:
        built, leaves = _build(engine, program, point)
        out = built[-1]
        value = _read(out, "data")
        if value is None:
            return EngineOutcome("invalid", None, None, f"output .data is {_describe_result(getattr(out, 'data', None))}, not a number",
                                 stage, program.output).to_tuple()
        stage = "backward"
        out.backward()
        gradient = tuple(_read(leaf, "grad") for leaf in leaves)
    except (KeyboardInterrupt, GeneratorExit):
        raise
    except BaseException as error:  # noqa: BLE001 - SystemExit from a hostile engine too
        if type(error) is _Junk:  # not isinstance: an engine's exception may fake its __class__
            return EngineOutcome("invalid", value, None, str(error), stage, _node_of(error), *_nodes(built, record)).to_tuple()
        return EngineOutcome("exception", value, None, describe_error(error), stage, _node_of(error), *_nodes(built, record)).to_tuple()
    if any(g is None for g in gradient):
        return EngineOutcome("invalid", value, gradient, ".grad of a leaf is not a number", stage, None, *_nodes(built, record)).to_tuple()
    # Every number here came through _read (or is the program's own float): plain
    # already, so the usual answer skips to_tuple's copying.
    return ("ok", value, gradient, "", "", None, *_nodes(built, record), None, None, "", "")


def _node_of(error: BaseException) -> int | None:
    """The node ``build`` tagged the error with (an engine's exception may answer
    anything for ``.node``, or raise)."""
    try:
        node = error.__dict__.get("node")
    except Exception:  # noqa: BLE001 - a hostile __dict__
        return None
    return node if type(node) is int else None


def _nodes(built: list[Any], record: bool) -> tuple[Any, Any]:
    if not record:
        return None, None
    # type() is float: constants are the program's own floats (engine objects are
    # never floats: build rejects them).
    values = tuple(n if type(n) is float else _read(n, "data") for n in built)
    grads = tuple(None if type(n) is float else _read(n, "grad") for n in built)
    return values, grads


def _hessian(engine: type, program: Program, point: Sequence[float]) -> tuple[tuple[Any, ...] | None, str]:
    """The engine's Hessian, a row per variable, and "" (or None and what failed).

    Each row gets a fresh graph: ``backward(create_graph=True)``, then every node's
    ``.grad`` is set to 0 (the engine may keep interior gradients, and the leaves
    accumulate) and the ``.grad`` of one variable is itself back-propagated.
    """
    rows = []
    for i in range(len(point)):
        stage = "forward"
        try:
            built, leaves = _build(engine, program, point)
            stage = "backward(create_graph=True)"
            built[-1].backward(create_graph=True)
            g = leaves[i].grad
            if plain_number(g) is not None or issubclass(type(g), int):
                rows.append((0.0,) * len(point))  # a number: a constant gradient
                continue
            stage = f"backward() of d/dx{i}"
            for node in built:
                if type(node) is not float:
                    node.grad = 0.0
            g.backward()
            rows.append(tuple(_read(leaf, "grad") for leaf in leaves))
        except (KeyboardInterrupt, GeneratorExit):
            raise
        except BaseException as error:  # noqa: BLE001 - as in _evaluate
            return None, f"{stage}: {describe_error(error)}"
    return tuple(rows), ""


def _tangents(engine: type, program: Program, point: Sequence[float]) -> tuple[tuple[Any, ...] | None, str]:
    """The output's ``.tangent`` with each variable's tangent 1 in turn (forward mode)."""
    tangents = []
    for k in range(len(point)):
        try:
            leaves = [engine(float(x), tangent=1.0 if j == k else 0.0) for j, x in enumerate(point)]
            tangents.append(_read(build(engine, program, leaves)[-1], "tangent"))
        except (KeyboardInterrupt, GeneratorExit):
            raise
        except BaseException as error:  # noqa: BLE001 - as in _evaluate
            return None, f"forward mode: {describe_error(error)}"
    return tuple(tangents), ""


def _higher(outcome: EngineOutcome, engine: type, program: Program, point: Sequence[float], order: int, forward: bool) -> EngineOutcome:
    """``outcome`` with the Hessian (order 2) and tangents (forward mode) asked for."""
    if outcome.status != "ok":
        return outcome  # the first-order finding comes first
    hessian, hessian_error = _hessian(engine, program, point) if order >= 2 else (None, "")
    tangents, tangent_error = _tangents(engine, program, point) if forward else (None, "")
    return replace(outcome, hessian=hessian, tangents=tangents, hessian_error=hessian_error, tangent_error=tangent_error)


def run(engine: type, program: Program, points: Sequence[Sequence[float]], *, record: bool = False,
        order: int = 1, forward: bool = False) -> list[EngineOutcome]:
    """Evaluate ``program`` with ``engine`` at each point (a fresh graph per point).

    Args:
        record: also return every node's ``.data`` and ``.grad`` (for blame).
        order: 2 also asks for the Hessian (``backward(create_graph=True)``).
        forward: also ask for forward-mode derivatives (``.tangent``).
    """
    # Through the plain form: whatever the engine made, only exact builtin
    # numbers and strings come out (in this process as across the sandbox).
    return [EngineOutcome.from_tuple(t) for t in run_plain(engine, program, points, record=record, order=order, forward=forward)]


def run_plain(engine: type, program: Program, points: Sequence[Sequence[float]], *, record: bool = False,
              order: int = 1, forward: bool = False) -> list[tuple]:
    """:func:`run`, each outcome in its plain form (:meth:`EngineOutcome.to_tuple`):
    what a sandbox sends."""
    outcomes = [_evaluate(engine, program, point, record) for point in points]
    if order >= 2 or forward:
        outcomes = [_higher(EngineOutcome.from_tuple(o), engine, program, p, order, forward).to_tuple() for o, p in zip(outcomes, points)]
    return outcomes
