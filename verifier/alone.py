"""Each op of an engine checked alone: :func:`assert_op_alone`.

An op is judged on its own, on variables, with a number on either side, with one
argument twice and under incoming gradients other than 1, at fixed ordinary and
extreme points, as :func:`verifier.assertions.assert_gradients` judges. The
verdict is computed once per engine and op. Under pytest the plugin names the
session's op-alone tests (:func:`set_alone_tests`): an assertion on an expression
that uses an op failing alone is then skipped (``depends on tanh, which fails
alone: see test_op_alone[tanh]``), not failed again under another test's name.

Example:
    >>> from engine import Value
    >>> assert_op_alone("mul", engine=Value) > 0
    True
    >>> fails_alone("tanh", engine=Value) is None
    True
"""

from __future__ import annotations

from typing import Mapping

from verifier.assertions import GradientMismatch, _host, _judge, _require
from verifier.expr import Expr, apply, const, var
from verifier.hosts import InProcess
from verifier.ops import OPS

__all__ = ["assert_op_alone", "fails_alone", "set_alone_tests"]


# Where each op is checked alone: ordinary numbers of both signs first, then the
# scales where formulas break (near 0, large enough to overflow a naive tanh or
# sigmoid, past exp's range). Row r of a binary form pairs ALONE_POINTS[r] with the
# number three places on, so no pair repeats a coordinate.
ALONE_POINTS: tuple[float, ...] = (0.7, -1.5, 2.0, -0.25, 3.0, 0.5, -2.5, 1.25, 10.0, -20.0, 1e-3, 400.0, -800.0)
ALONE_CONSTANTS: tuple[float, ...] = (2.0, -0.5)  # a number on either side of a binary op
# Incoming gradients other than 1: an op that ignores out.grad (or uses its size
# only) is right alone at 1. The op is wrapped as op(...) * c with c set to these.
ALONE_UPSTREAM: tuple[float, ...] = (3.0, -0.5)
ALONE_EXPONENTS: tuple[float, ...] = (2.0, 3.0, 0.5, -1.0, 2.5, -2.0, 1.5, 1.0 / 3.0, 1.0, 4.0)


# Ops whose test of the op alone is in the pytest session (op -> that test's name),
# set by the plugin: an expression using one that fails alone is skipped, not failed
# again under another test's name.
_alone_tests: dict[str, str] = {}
_alone_engine: type | None = None  # the engine those tests check
# Verdicts of assert_op_alone, once per engine and op: the points compared, or the error.
_alone: dict[tuple[type, str], int | GradientMismatch] = {}
_alone_plain: dict[tuple[type, str], int | GradientMismatch] = {}  # its forms that use the op only


def set_alone_tests(tests: Mapping[str, str], engine: type | None = None) -> None:
    """Ops checked alone in this pytest session (op -> test name) on ``engine``, set
    by the plugin: an assertion on that engine, on an expression that uses one of
    them that fails alone, is skipped with ``depends on tanh, which fails alone:
    see test_op_alone[tanh]``."""
    global _alone_engine
    _alone_tests.clear()
    _alone_tests.update(tests)
    _alone_engine = engine


def skip_if_failing_alone(host: InProcess, ops: list[str]) -> None:
    """Under pytest, skip an assertion whose expression uses one of ``ops`` that the
    session checks alone (on this engine) and that fails alone."""
    __tracebackhide__ = True  # the skip is reported at the test's line, not here
    if host.engine is not _alone_engine:
        return  # another engine than the one the session checks op by op
    for op in ops:
        if op in _alone_tests and fails_alone(op, engine=host.engine) is not None:
            import pytest

            pytest.skip(f"depends on {op}, which fails alone: see {_alone_tests[op]}")


def _alone_forms(name: str) -> list[tuple[Expr, list[list[float]], str | None]]:
    """The expressions of op ``name`` alone, each with its points and the other op
    it goes through (None: only ``name``)."""
    if name not in OPS:
        raise ValueError(f"op={name!r} is not an op; expected one of {', '.join(OPS)}")
    a, b, n = var("a"), var("b"), len(ALONE_POINTS)
    one = [[x] for x in ALONE_POINTS]
    two = [[ALONE_POINTS[r], ALONE_POINTS[(r + 3) % n]] for r in range(n)]
    if OPS[name].arity == 1:
        cores = [apply(name, a, param=p) for p in (ALONE_EXPONENTS if name == "pow" else (None,))]
        forms = [(core, one) for core in cores]
        upstream, rows = var("b"), one
    else:
        forms = [(apply(name, a, b), two), (apply(name, a, a), one)]
        forms += [(apply(name, const(c), a), one) for c in ALONE_CONSTANTS]  # 2 - a calls __rsub__
        forms += [(apply(name, a, const(c)), one) for c in ALONE_CONSTANTS]
        cores, upstream, rows = [apply(name, a, b)], var("c"), two
    out = [(expr, points, None) for expr, points in forms]
    # Under a non-unit incoming gradient (op(...) * c), and with a gradient already
    # accumulated into its argument (op(...) + a: an `=` instead of `+=` loses it).
    # Each goes through another op, so it is judged only once that op is right alone
    # (see _check_alone): a wrong mul is never blamed on this op.
    for core in cores:
        out.append((core * upstream, [row + [ALONE_UPSTREAM[r % 2]] for r, row in enumerate(rows)], None if name == "mul" else "mul"))
        out.append((core + a, rows, None if name == "add" else "add"))
    return out


def fails_alone(op: str, *, engine: type | str) -> GradientMismatch | None:
    """The error of :func:`assert_op_alone` for ``op`` (None if it passes), computed
    once per engine and op."""
    try:
        assert_op_alone(op, engine=engine)
    except GradientMismatch as error:
        return error
    return None


def assert_op_alone(op: str, *, engine: type | str) -> int:
    """Assert that one op of the engine is right on its own: on variables, with a
    number on either side (``2 - a`` calls ``__rsub__``), with one argument twice
    (``a * a``) and under incoming gradients other than 1, at fixed ordinary and
    extreme points, judged as :func:`~verifier.assertions.assert_gradients` judges.

    Check every op alone before anything built from it: a wrong op then fails once,
    under its own name, instead of in every property that uses it. The verdict is
    computed once per engine and op (the points are fixed), so asking again is free.

    Args:
        op: an op of :data:`verifier.ops.OPS` the engine has, e.g. ``"tanh"``.
        engine: the engine class, or a ``module:Class`` / ``file.py:Class`` target.

    Returns:
        How many points were compared.

    Raises:
        GradientMismatch: the first form that is wrong, with the op to blame.
        ValueError: ``op`` is not an op, or the engine lacks it (skipped under pytest).

    Example:
        >>> from engine import Value
        >>> assert_op_alone("tanh", engine=Value) > 0
        True
    """
    __tracebackhide__ = True
    host = _host(engine)
    key = (host.engine, op)
    if key not in _alone:
        forms = _alone_forms(op)
        _require(forms[0][0], host.supported)
        plain = _plain(host, op, forms)
        rest = plain if isinstance(plain, GradientMismatch) else _check_alone(host, [f for f in forms if f[2] is not None])
        _alone[key] = rest if isinstance(rest, GradientMismatch) else plain + rest
    verdict = _alone[key]
    if isinstance(verdict, GradientMismatch):
        raise verdict
    return verdict


def _plain(host: InProcess, op: str, forms: list[tuple[Expr, list[list[float]], str | None]] | None = None) -> int | GradientMismatch:
    """The verdict of the forms that use ``op`` only (what the other forms go through)."""
    key = (host.engine, op)
    if key not in _alone_plain:
        forms = _alone_forms(op) if forms is None else forms
        _alone_plain[key] = _check_alone(host, [f for f in forms if f[2] is None])
    return _alone_plain[key]


def _check_alone(host: InProcess, forms: list[tuple[Expr, list[list[float]], str | None]]) -> int | GradientMismatch:
    compared = 0
    for expr, rows, through in forms:
        if through is not None and (through not in host.supported or isinstance(_plain(host, through), GradientMismatch)):
            continue  # judged through another op only when that op is right alone
        try:
            compared += _judge(host, expr, rows)
        except GradientMismatch as error:
            return error
    return compared
