"""The micrograd exercises (Karpathy's "building micrograd" notebook), with their
published answers, run on engine.Value; cross-checked with finite differences and torch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from engine import Value
from engine.nn import MLP

F64 = torch.float64


# -- exercise 1: a function of three variables ----------------------------------------

F_VALUE = 6.336362190988558
F_GRAD = [-12.353553390593273, 10.25699027111255, 0.0625]
POINT = (2.0, 3.0, 4.0)


def f(a, b, c):
    """Works on Values (engine) as written in the exercise."""
    return -a**3 + (3 * b).sin() - 1.0 / c + b**2.5 - a**0.5


def f_math(a: float, b: float, c: float) -> float:
    """The same function on plain floats, for finite differences."""
    return -a**3 + math.sin(3 * b) - 1.0 / c + b**2.5 - a**0.5


def test_exercise_1_value_and_gradient():
    a, b, c = (Value(x) for x in POINT)
    out = f(a, b, c)
    out.backward()
    assert out.data == pytest.approx(F_VALUE, abs=1e-9)
    assert [a.grad, b.grad, c.grad] == pytest.approx(F_GRAD, abs=1e-9)
    assert f_math(*POINT) == pytest.approx(F_VALUE, abs=1e-12)  # the float twin is the same f


def test_exercise_1_forward_and_symmetric_differences():
    h = 1e-6
    a, b, c = (Value(x) for x in POINT)
    f(a, b, c).backward()
    grad = [a.grad, b.grad, c.grad]
    for i, g in enumerate(grad):
        up = list(POINT)
        up[i] += h
        down = list(POINT)
        down[i] -= h
        forward = (f_math(*up) - f_math(*POINT)) / h
        central = (f_math(*up) - f_math(*down)) / (2 * h)
        assert abs(forward - g) < 1e-5, (i, forward, g)
        # error O(h^2) against O(h): strictly closer on every coordinate
        assert abs(central - g) < abs(forward - g), (i, central, forward, g)


# -- exercise 2: softmax and negative log likelihood ------------------------------------

LOGITS = [0.0, 3.0, -2.0, 1.0]
LOSS = 2.1755153626167147
LOSS_GRAD = [0.041772570515350445, 0.8390245074625319, 0.005653302662216329, -0.8864503806400986]


def softmax(logits):
    counts = [logit.exp() for logit in logits]
    denominator = sum(counts)
    return [c / denominator for c in counts]


def test_exercise_2_softmax_nll_matches_answer_and_torch():
    logits = [Value(x) for x in LOGITS]
    loss = -softmax(logits)[3].log()
    loss.backward()
    grad = [v.grad for v in logits]
    assert loss.data == pytest.approx(LOSS, abs=1e-12)
    assert grad == pytest.approx(LOSS_GRAD, abs=1e-12)

    t = torch.tensor(LOGITS, dtype=F64, requires_grad=True)
    tloss = -F.log_softmax(t, dim=-1)[3]
    tloss.backward()
    assert loss.data == pytest.approx(tloss.item(), abs=1e-12)
    assert grad == pytest.approx(t.grad.tolist(), abs=1e-12)


# -- exercise 3: one tanh neuron --------------------------------------------------------

def neuron(tanh):
    x1, x2 = Value(2.0, label="x1"), Value(0.0, label="x2")
    w1, w2 = Value(-3.0, label="w1"), Value(1.0, label="w2")
    b = Value(6.8813735870195432, label="b")
    n = x1 * w1 + x2 * w2 + b
    o = tanh(n)
    o.backward()
    return o, x1, w1, x2, w2


def tanh_by_exp(n):
    e = (2 * n).exp()
    return (e - 1) / (e + 1)


@pytest.mark.parametrize("tanh", [lambda n: n.tanh(), tanh_by_exp], ids=["tanh", "exp-form"])
def test_exercise_3_tanh_neuron(tanh):
    o, x1, w1, x2, w2 = neuron(tanh)
    assert o.data == pytest.approx(0.7071067811865476, abs=1e-12)
    assert [x1.grad, w1.grad, x2.grad, w2.grad] == pytest.approx([-1.5, 1.0, 0.5, 0.0], abs=1e-9)


# -- exercise 4: a small MLP, against torch, and training --------------------------------

XS = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
YS = [1.0, -1.0, -1.0, 1.0]


def mlp_loss(net):
    ypred = [net(x) for x in XS]
    return sum((yout - ygt) ** 2 for ygt, yout in zip(YS, ypred))


def torch_mlp_grads(net):
    """The same network in torch float64, from the engine's weights; grads in parameters() order."""
    weights = [(torch.tensor([[w.data for w in n.w] for n in layer.neurons], dtype=F64, requires_grad=True),
                torch.tensor([n.b.data for n in layer.neurons], dtype=F64, requires_grad=True))
               for layer in net.layers]
    loss = torch.zeros((), dtype=F64)
    for x, y in zip(XS, YS):
        h = torch.tensor(x, dtype=F64)
        for W, b in weights:
            h = torch.tanh(W @ h + b)
        loss = loss + (h[0] - y) ** 2
    loss.backward()
    grads = []
    for W, b in weights:
        for i in range(W.shape[0]):
            grads += W.grad[i].tolist() + [b.grad[i].item()]
    return loss.item(), grads


def test_exercise_4_mlp_gradients_match_torch():
    net = MLP(3, [4, 4, 1])
    params = net.parameters()
    assert len(params) == 41
    loss = mlp_loss(net)
    net.zero_grad()
    loss.backward()
    tloss, tgrads = torch_mlp_grads(net)
    assert loss.data == pytest.approx(tloss, abs=1e-10)
    assert [p.grad for p in params] == pytest.approx(tgrads, abs=1e-10)
    assert any(abs(g) > 1e-3 for g in tgrads)  # a non-trivial comparison


def test_exercise_4_gradient_descent_lowers_the_loss():
    net = MLP(3, [4, 4, 1])
    initial = mlp_loss(net).data
    for _ in range(20):
        loss = mlp_loss(net)
        net.zero_grad()
        loss.backward()
        for p in net.parameters():
            p.data += -0.05 * p.grad
    final = mlp_loss(net).data
    assert final < initial, (initial, final)
