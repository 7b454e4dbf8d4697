"""crossgrad's property suites: run them against your own engine with pytest.

Example::

    pip install crossgrad
    pytest --pyargs properties --verifier-engine path/to/my_engine.py:Value

The suites (each test exercises only the ops the engine has; the others are
skipped with the reason ``engine lacks exp, log``):

* ``test_op_alone``: each op on its own, run first; while one fails, the tests
  that use it are skipped (``depends on tanh, which fails alone: see
  test_op_alone[tanh]``) and the random expressions leave it out, so one bug is
  one failure, named after its op;
* ``test_oracle_agreement``: values and gradients of random expressions against
  the exact reference (SymPy at 50 digits), torch and central differences;
* ``test_metamorphic``: relations that need no oracle (``x - y`` is ``x + (-y)``,
  ``tanh(x)`` is ``2*sigmoid(2x) - 1``, the sum, product and chain rules, ...);
* ``test_backward``: reused nodes, gradients accumulating over ``backward()``
  calls, zeroing gradients;
* ``test_nn``: MLP losses (squared error; softmax and negative log likelihood)
  against ``torch.nn`` in float64;
* ``test_exercises``: the micrograd exercises, with their published answers.

The fixtures ``verifier_engine`` and ``verifier_ops``, the ``requires_ops`` marker
and the options come from crossgrad's pytest plugin (:mod:`verifier.pytest_plugin`).

Every test says what it compared: it passes the number of points it judged to
:func:`compared`, an example that judged none is assumed away (Hypothesis draws
another), and a test whose examples all judged nothing fails.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Sequence

import numpy as np
from hypothesis import Phase, assume, currently_in_test_context, settings
from hypothesis import strategies as st

from verifier.expr import Expr, compile_program
from verifier.reference import sweep
from verifier.strategies import points

__all__ = ["scaled", "compared", "tally", "clean_points", "FALLBACK"]

# Per test (pytest node id): examples counted, and points they compared. The
# conftest turns a test that compared nothing into a failure that says so.
_examples: Counter = Counter()
_points: Counter = Counter()


def _current_test() -> str:
    # "path::test[param] (call)"; empty outside pytest.
    return os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]


def compared(judged: int) -> int:
    """Count the points one example (or one plain test) compared.

    Inside a Hypothesis example, an example that compared nothing is assumed away
    (``hypothesis.assume``): it does not pass, Hypothesis draws another, and a test
    whose examples all compared nothing fails. Outside one (a test at fixed
    points), comparing nothing is an AssertionError.

    Args:
        judged: how many points were compared, e.g. what
            :func:`~verifier.assertions.assert_gradients` or
            :func:`~verifier.assertions.assert_same_gradients` returned.

    Returns:
        ``judged``, for chaining.

    Example::

        @given(data=st.data())
        def test_relation(verifier_engine, data):
            ...
            compared(assert_same_gradients(f, g, at, engine=verifier_engine))
    """
    test = _current_test()
    _examples[test] += 1
    _points[test] += judged
    if currently_in_test_context():
        assume(judged > 0)
    elif judged <= 0:
        raise AssertionError("the test compared no point: every point was outside the domain, at a kink or beyond float64")
    return judged


def tally(test: str) -> tuple[int, int]:
    """``(examples, points)`` counted by :func:`compared` for a test's node id."""
    return _examples[test], _points[test]


def scaled(fraction: float, *, shrink: bool = True) -> settings:
    """Settings running ``fraction`` of the loaded profile's ``max_examples``
    (at least 1), for properties whose examples are expensive (a whole MLP).

    Evaluated when the test module is imported, after ``--hypothesis-profile`` and
    ``--verifier-examples`` took effect, so both still scale it.

    Args:
        fraction: of the profile's ``max_examples``.
        shrink: False skips Hypothesis's shrink phase, for examples drawn from a
            seed (a smaller seed is no simpler example).

    Example::

        @scaled(0.2)
        @given(st.data())
        def test_expensive(verifier_engine, data): ...
    """
    examples = max(1, round(settings.default.max_examples * fraction))
    if shrink:
        return settings(max_examples=examples)
    return settings(max_examples=examples, phases=[p for p in settings.default.phases if p != Phase.shrink])


# Ordinary values, tried when no drawn point is clean: Hypothesis often draws all-zero
# points for a new expression (its simplest choice), and 0 is a kink or an edge of
# relu, sqrt, log, division and fractional powers. Variable i of row r takes
# FALLBACK[(r + 2 i) % 9], so no two coordinates of a row are equal.
FALLBACK: tuple[float, ...] = (0.5, -1.5, 2.0, 0.75, -0.25, 1.25, 3.0, -2.5, 1.75)


def clean_points(data: st.DataObject, exprs: Sequence[Expr], names: Sequence[str], *, count: int = 8, label: str = "points") -> np.ndarray:
    """Up to ``count`` points (rows over ``names``) where every expression is clean
    in float64: inside its domain, away from kinks and edges, nothing overflowing.

    For relations that hold only there (two ways of writing one function, the
    rules of differentiation): four times ``count`` points are drawn and the clean
    ones kept; if none is, ordinary points (:data:`FALLBACK`) are tried, so fewer
    examples compare nothing. May return no rows (``sqrt(x - x)`` has none).
    """
    names = tuple(names)
    programs = [(p, [names.index(v) for v in p.variables]) for p in map(compile_program, exprs)]

    def clean(grid: np.ndarray) -> np.ndarray:
        keep = np.ones(len(grid), dtype=bool)
        for program, columns in programs:
            keep &= sweep(program, grid[:, columns]).clean
        return grid[keep][:count]

    rows = clean(data.draw(points(names, count=4 * count), label=label))
    if len(rows):
        return rows
    fallback = [[FALLBACK[(r + 2 * i) % len(FALLBACK)] for i in range(len(names))] for r in range(count)]
    return clean(np.array(fallback, dtype=float))
