"""crossgrad's property suites: run them against your own engine with pytest.

Example::

    pip install crossgrad
    pytest --pyargs properties --verifier-engine path/to/my_engine.py:Value

The suites (each test exercises only the ops the engine has; the others are
skipped with the reason ``engine lacks exp, log``):

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
"""

from __future__ import annotations

from hypothesis import Phase, settings

__all__ = ["scaled"]


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
