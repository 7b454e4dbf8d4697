"""Unit tests of engine.nn: parameter count and order, zero_grad, nonlinearities, init."""

from __future__ import annotations

import math
import random

import pytest

from engine import Value
from engine.nn import MLP, Layer, Module, Neuron


def test_parameter_counts():
    assert len(Neuron(3).parameters()) == 4
    assert len(Layer(3, 2).parameters()) == 8
    assert len(MLP(3, [4, 4, 1]).parameters()) == 41
    assert Module().parameters() == []


def test_parameter_order_is_layer_neuron_weights_then_bias():
    net = MLP(3, [4, 4, 1])
    expected = [p for layer in net.layers for n in layer.neurons for p in [*n.w, n.b]]
    params = net.parameters()
    assert len(params) == len(expected) and all(p is q for p, q in zip(params, expected))
    assert [p.label for p in params[:5]] == ["w0", "w1", "w2", "b", "w0"]
    assert params[-1] is net.layers[-1].neurons[0].b


def test_zero_grad_clears_every_parameter():
    net = MLP(2, [3, 1])
    loss = (net([0.5, -1.0]) - 1.0) ** 2
    loss.backward()
    assert any(p.grad != 0.0 for p in net.parameters())
    net.zero_grad()
    assert all(p.grad == 0.0 and type(p.grad) is float for p in net.parameters())


@pytest.mark.parametrize("nonlin,f", [
    ("tanh", math.tanh), ("relu", lambda a: max(0.0, a)), ("linear", lambda a: a),
])
def test_neuron_nonlinearities(nonlin, f):
    n = Neuron(2, nonlin, rng=random.Random(3))
    for x in ([1.0, 2.0], [-2.0, 0.5], [3.0, -3.0]):
        act = n.w[0].data * x[0] + n.w[1].data * x[1] + n.b.data
        out = n([Value(x[0]), x[1]])  # Values and numbers both accepted
        assert out.data == pytest.approx(f(act), abs=1e-15)
    assert repr(n) == f"{nonlin.capitalize()}Neuron(2)"


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match=r"nonlin='sigmoid' must be one of 'tanh', 'relu', 'linear'"):
        Neuron(2, "sigmoid")
    with pytest.raises(ValueError, match=r"output_nonlin='softmax'"):
        MLP(2, [1], output_nonlin="softmax")
    with pytest.raises(ValueError, match=r"nin=0 must be a positive int"):
        Neuron(0)
    with pytest.raises(ValueError, match=r"nouts=\[\]"):
        MLP(2, [])
    with pytest.raises(ValueError, match=r"Neuron expects 3 inputs, got 2"):
        Neuron(3)([1.0, 2.0])


def test_initialisation_is_deterministic_and_uniform():
    weights = lambda net: [p.data for p in net.parameters()]
    assert weights(MLP(3, [4, 4, 1])) == weights(MLP(3, [4, 4, 1]))
    assert weights(MLP(3, [4, 4, 1])) == weights(MLP(3, [4, 4, 1], rng=random.Random(0)))
    assert weights(MLP(3, [4, 4, 1])) != weights(MLP(3, [4, 4, 1], rng=random.Random(1)))
    rng = random.Random(0)
    assert weights(Neuron(3)) == [rng.uniform(-1, 1) for _ in range(4)]  # weights then bias
    big = MLP(5, [20, 20, 1])
    assert all(-1.0 <= w <= 1.0 for w in weights(big))
    assert len(set(weights(big))) == len(weights(big))  # neurons do not share a seed
    layer = Layer(3, 2)  # a layer's default rng is shared by its neurons too
    assert layer.neurons[0].w[0].data != layer.neurons[1].w[0].data


def test_layer_returns_a_value_for_one_output_and_a_list_otherwise():
    assert isinstance(Layer(3, 1)([1.0, 2.0, 3.0]), Value)
    outs = Layer(3, 2)([1.0, 2.0, 3.0])
    assert isinstance(outs, list) and len(outs) == 2


def test_mlp_nonlinearity_per_layer():
    net = MLP(2, [3, 1], nonlin="relu", output_nonlin="linear")  # micrograd's own MLP
    assert [n.nonlin for layer in net.layers for n in layer.neurons] == ["relu"] * 3 + ["linear"]
    default = MLP(2, [3, 1])
    assert {n.nonlin for layer in default.layers for n in layer.neurons} == {"tanh"}
    out = default([0.3, -0.7])
    assert isinstance(out, Value) and out._op == "tanh"


def test_mlp_with_a_one_wide_hidden_layer():
    net = MLP(2, [1, 2])
    out = net([1.0, -1.0])
    assert isinstance(out, list) and len(out) == 2
    sum(out).backward()
    assert net.layers[0].neurons[0].b.grad != 0.0
