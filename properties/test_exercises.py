"""The micrograd exercises, with their published answers, as a regression suite.

From Karpathy's micrograd (its README example and its sanity check) and the
exercises of "The spelled-out intro to neural networks and backpropagation":
each is written with the engine's Values exactly as in the exercise, judged
against the exact reference (which names a wrong op), and compared with the
published numbers.
"""

from __future__ import annotations

import pytest

from properties import compared
from verifier.assertions import assert_gradients

APPROX = dict(rel=1e-12, abs=1e-12)


def _run(engine: type, f, point: dict[str, float]) -> tuple[float, list[float]]:
    leaves = [engine(x) for x in point.values()]
    out = f(*leaves)
    out.backward()
    return float(out.data), [float(v.grad) for v in leaves]


# -- micrograd's README example (its test_more_ops) --------------------------------

def readme_example(a, b):
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    return g


@pytest.mark.requires_ops("add", "sub", "mul", "div", "neg", "pow", "relu")
def test_micrograd_readme_example(verifier_engine):
    point = {"a": -4.0, "b": 2.0}
    compared(assert_gradients(readme_example, point, engine=verifier_engine))
    value, grad = _run(verifier_engine, readme_example, point)
    assert value == pytest.approx(24.70408163265306, **APPROX)
    assert grad == pytest.approx([138.83381924198252, 645.5772594752186], **APPROX)


# -- micrograd's test_sanity_check ----------------------------------------------------

def sanity_check(x):
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    return h + q + q * x


@pytest.mark.requires_ops("add", "mul", "relu")
def test_micrograd_sanity_check(verifier_engine):
    point = {"x": -4.0}
    compared(assert_gradients(sanity_check, point, engine=verifier_engine))
    value, grad = _run(verifier_engine, sanity_check, point)
    assert value == pytest.approx(-20.0, **APPROX)
    assert grad == pytest.approx([46.0], **APPROX)


# -- exercise 1: a function of three variables -------------------------------------

def exercise_1(a, b, c):
    return -a**3 + (3 * b).sin() - 1.0 / c + b**2.5 - a**0.5


@pytest.mark.requires_ops("add", "sub", "mul", "div", "neg", "pow", "sin")
def test_exercise_1_gradient_of_a_function(verifier_engine):
    point = {"a": 2.0, "b": 3.0, "c": 4.0}
    compared(assert_gradients(exercise_1, point, engine=verifier_engine))
    value, grad = _run(verifier_engine, exercise_1, point)
    assert value == pytest.approx(6.336362190988558, **APPROX)
    assert grad == pytest.approx([-12.353553390593273, 10.25699027111255, 0.0625], **APPROX)


# -- exercise 2: softmax and negative log likelihood -------------------------------

def exercise_2(l0, l1, l2, l3):
    counts = [logit.exp() for logit in (l0, l1, l2, l3)]
    denominator = counts[0] + counts[1] + counts[2] + counts[3]
    return -(counts[3] / denominator).log()


@pytest.mark.requires_ops("add", "div", "neg", "exp", "log")
def test_exercise_2_softmax_negative_log_likelihood(verifier_engine):
    point = {"l0": 0.0, "l1": 3.0, "l2": -2.0, "l3": 1.0}
    compared(assert_gradients(exercise_2, point, engine=verifier_engine))
    value, grad = _run(verifier_engine, exercise_2, point)
    assert value == pytest.approx(2.1755153626167147, **APPROX)
    assert grad == pytest.approx(
        [0.041772570515350445, 0.8390245074625319, 0.005653302662216329, -0.8864503806400986], **APPROX
    )


# -- exercise 3: one tanh neuron, with tanh and through exp --------------------------

def neuron_tanh(x1, w1, x2, w2, b):
    return (x1 * w1 + x2 * w2 + b).tanh()


def neuron_exp(x1, w1, x2, w2, b):
    e = (2 * (x1 * w1 + x2 * w2 + b)).exp()
    return (e - 1) / (e + 1)


NEURON = {"x1": 2.0, "w1": -3.0, "x2": 0.0, "w2": 1.0, "b": 6.8813735870195432}


@pytest.mark.parametrize(
    "neuron",
    [
        pytest.param(neuron_tanh, marks=pytest.mark.requires_ops("add", "mul", "tanh"), id="tanh"),
        pytest.param(neuron_exp, marks=pytest.mark.requires_ops("add", "sub", "mul", "div", "exp"), id="exp-form"),
    ],
)
def test_exercise_3_tanh_neuron(verifier_engine, neuron):
    compared(assert_gradients(neuron, NEURON, engine=verifier_engine))
    value, grad = _run(verifier_engine, neuron, NEURON)
    assert value == pytest.approx(0.7071067811865476, **APPROX)
    # d/dx1, d/dw1, d/dx2, d/dw2, d/db
    assert grad == pytest.approx([-1.5, 1.0, 0.5, 0.0, 0.5], rel=1e-9, abs=1e-9)
