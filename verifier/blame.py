"""Naming the op at fault, by replaying what the engine saw.

Each op node of a failing expression is checked alone, at the exact inputs the
engine saw there, in the same form (a number on the left of ``-`` exercises
``__rsub__``; ``x * x`` keeps its shared argument). An op that is wrong alone is to
blame. If every op is right alone:

1. each node's recorded value is judged against its op alone at the inputs the
   engine gave it (a forward value that is wrong only inside this graph);
2. each op is checked under the incoming gradient it really received (the
   engine's ``.grad`` of its output, or the exact adjoint) and under non-unit ones
   (:data:`UPSTREAM`): alone at an incoming gradient of 1, a ``mul`` that drops
   ``out.grad`` or a ``div`` that overflows only under a huge gradient looks right.
   The protocol cannot seed ``out.grad``, so the op is wrapped as ``op(a, b) * c``
   with ``c`` a variable set to the incoming gradient; ``mul`` goes first, and the wrapping ``mul`` is itself
   checked alone before another op is blamed through it;
3. each op is checked while a gradient accumulates into its argument from a
   second use (``f(a, b) + a``: an ``=`` instead of ``+=`` overwrites it); ``add``
   goes first since the pattern itself uses it.

If all of that passes, the backward pass itself (traversal order, repeated visits)
is to blame, but only for a wrong gradient: a backward pass cannot make a value
wrong, so a wrong value that no op shows alone is blamed on no op.
"""

from __future__ import annotations

import math
from typing import Any, Sequence


from verifier.expr import Expr, Program, apply, compile_program, const, var
from verifier.findings import Blame
from verifier.hosts import EngineCrash, EngineTimeout
from verifier.judge import Verdict, format_number, format_point, judge_point
from verifier.reference import adjoints_at, truth_at
from verifier.run_engine import EngineOutcome

__all__ = ["blame_engine", "check_alone", "alone_expression", "UPSTREAM"]

_NAMES = ("a", "b")
# The incoming gradient's variable in ``op(a, b) * c``: the next letter after the op's
# own, so a form's point lists its variables in order (a, b, c), as reports name them.
_UPSTREAM_NAMES = ("b", "c")
# Non-unit incoming gradients: a scale (an op that ignores out.grad) and a sign flip
# with a fraction (an op that uses |out.grad| or rounds it).
UPSTREAM = (3.0, -0.5)
BENIGN = (0.75, 1.25)  # inside every op's domain, away from every kink


def alone_expression(program: Program, node: int, inputs: Sequence[Any]) -> tuple[Expr, tuple[float, ...]] | None:
    """Node ``node``'s op applied to fresh variables set to ``inputs`` of its
    arguments (constants stay constants; a shared argument stays shared).

    Example:
        >>> from verifier.parsing import parse
        >>> program = compile_program(parse("3 - x * x"))
        >>> program.ops
        ('const', 'var', 'mul', 'sub')
        >>> expr, at = alone_expression(program, program.output, [3.0, 2.0, 4.0, -1.0])
        >>> str(expr), at
        ('3 - a', (4.0,))
    """
    leaves: dict[int, Expr] = {}
    point: list[float] = []
    for j in program.args[node]:
        if j in leaves:
            continue
        if program.ops[j] == "const":
            leaves[j] = const(program.params[j])
            continue
        x = inputs[j]
        if not (isinstance(x, float) and math.isfinite(x)):
            return None
        leaves[j] = var(_NAMES[len(point)])
        point.append(x)
    if not point:
        return None
    expr = apply(program.ops[node], *(leaves[j] for j in program.args[node]), param=program.params[node])
    return expr, tuple(point)


def _keep(verdicts: Sequence[Verdict], severity: str) -> list[Verdict]:
    return [v for v in verdicts if severity == "warning" or v.severity == "error"]


def _run(host: Any, program: Program, points: Sequence[Sequence[float]]) -> list[EngineOutcome] | Verdict:
    try:
        return host.run(program, points)
    except EngineCrash as error:
        return Verdict("crash", "error", "engine", str(error))
    except EngineTimeout as error:
        return Verdict("timeout", "error", "engine", str(error))


def check_alone(host: Any, expr: Expr, point: Sequence[float], severity: str = "error") -> list[Verdict]:
    """The verdicts of the engine on ``expr`` at ``point`` (crashes and hangs
    included): errors only, or warnings too with ``severity="warning"``.

    Example:
        >>> from engine import Value
        >>> from verifier.hosts import InProcess
        >>> check_alone(InProcess(Value), var("a").tanh(), (0.5,))
        []
    """
    program = compile_program(expr)
    outcomes = _run(host, program, [point])
    if isinstance(outcomes, Verdict):
        return [outcomes]
    return _keep(judge_point(truth_at(program, point), outcomes[0], program.variables), severity)


def _op_order(program: Program, first: int | None, prefer: str | None) -> list[int]:
    """The node that raised first, then nodes of the preferred op, then the rest."""
    return sorted(program.op_nodes(), key=lambda i: (i != first, program.ops[i] != prefer))


def _alone_at_benign(program: Program, node: int) -> tuple[Expr, tuple[float, ...]] | None:
    """Node ``node``'s op alone at :data:`BENIGN` inputs (same form as the node)."""
    fake = [BENIGN[k % 2] for k in range(len(program))]
    for k, j in enumerate(dict.fromkeys(program.args[node])):
        fake[j] = BENIGN[k]
    return alone_expression(program, node, fake)


def _try(host: Any, program: Program, node: int, alone: tuple[Expr, tuple[float, ...]] | None, severity: str, why: str) -> Blame | None:
    if alone is None:
        return None
    expr, at = alone
    failures = check_alone(host, expr, at, severity)
    if not failures:
        return None
    names = compile_program(expr).variables
    op = program.ops[node]
    return Blame("engine", op, str(expr), f"{op} is wrong alone{why}: {expr} at {format_point(names, at)}: {failures[0].message}", node, at)


# -- 1. forward values, node by node -------------------------------------------------

def _wrong_value(program: Program, outcome: EngineOutcome, inputs: Sequence[Any], severity: str) -> Blame | None:
    """The first node whose recorded value is wrong for the inputs it was given."""
    seen = outcome.node_values or ()
    for i in program.op_nodes():
        if i >= len(seen) or seen[i] is None:
            break  # not built: the forward pass stopped before this node
        alone = alone_expression(program, i, inputs)
        if alone is None:
            continue
        expr, at = alone
        alone_program = compile_program(expr)
        truth = truth_at(alone_program, at)
        # Only the value is in question: give the truth's own gradient back.
        verdicts = judge_point(truth, EngineOutcome("ok", seen[i], truth.gradient), alone_program.variables, f"node {i}")
        failures = [v for v in _keep(verdicts, severity) if v.kind == "value"]
        if failures:
            op = program.ops[i]
            return Blame("engine", op, str(expr),
                         f"{op} computes a wrong value inside this graph, at the inputs the engine gave it: "
                         f"{expr} at {format_point(alone_program.variables, at)}: {failures[0].message}", i, at)
    return None


# -- 2. incoming gradients --------------------------------------------------------------

def _incoming(outcome: EngineOutcome | None, adjoints: list[float] | None, node: int) -> list[tuple[float, str]]:
    """The incoming gradients to check node ``node``'s op under, and where each is from."""
    chosen: list[tuple[float, str]] = []
    grads = outcome.node_grads if outcome is not None and outcome.node_grads else ()
    own = grads[node] if node < len(grads) else None
    if isinstance(own, float) and math.isfinite(own):
        chosen.append((own, "the engine's own incoming gradient"))
    if adjoints is not None and math.isfinite(adjoints[node]):
        chosen.append((adjoints[node], "the exact incoming gradient"))
    chosen += [(g, "an incoming gradient") for g in UPSTREAM]
    unique: dict[float, tuple[float, str]] = {}
    for g, why in chosen:
        if g not in (0.0, 1.0) and g not in unique:  # 1 was checked alone; 0 shows nothing
            unique[g] = (g, why)
    return list(unique.values())


def _under_upstream(host: Any, program: Program, node: int, alone: tuple[Expr, tuple[float, ...]], incoming: list[tuple[float, str]], severity: str) -> Blame | None:
    """Node ``node``'s op alone, wrapped as ``op(a, b) * c`` for each incoming ``g`` (c = g)."""
    expr, at = alone
    pattern = apply("mul", expr, var(_UPSTREAM_NAMES[len(at) - 1]))
    wrapped = compile_program(pattern)
    points = [(*at, g) for g, _ in incoming]
    outcomes = _run(host, wrapped, points)
    op = program.ops[node]
    for (g, why), p, outcome in zip(incoming, points, outcomes if isinstance(outcomes, list) else [outcomes] * len(points)):
        truth = truth_at(wrapped, p)
        failures = [outcome] if isinstance(outcome, Verdict) else _keep(judge_point(truth, outcome, wrapped.variables), severity)
        if not failures:
            continue
        if op != "mul":
            # The wrapping mul must be right alone where it multiplies, or it is the culprit.
            inner = truth.node_values[wrapped.args[-1][0]]
            product = var("a") * var("b")
            wrong = check_alone(host, product, (inner, g), severity) if math.isfinite(inner) else []
            if wrong:
                return Blame("engine", "mul", str(product), f"mul is wrong alone: {product} at "
                             f"{format_point(('a', 'b'), (inner, g))}: {wrong[0].message}", None, (inner, g))
        return Blame("engine", op, str(pattern),
                     f"{op} is wrong under {why} {format_number(g)} (right under 1): "
                     f"{pattern} at {format_point(wrapped.variables, p)}: {failures[0].message}", node, p)
    return None


def _upstream_order(program: Program, prefer: str | None) -> list[int]:
    """mul first (every other op is checked through it), then ``prefer``, then the rest."""
    return sorted(program.op_nodes(), key=lambda i: (program.ops[i] != "mul", program.ops[i] != prefer))


# -- 3. accumulation into a shared argument -------------------------------------------------

def _overwrites(host: Any, program: Program, inputs: Sequence[Any], severity: str, prefer: str | None) -> Blame | None:
    present = list(dict.fromkeys(program.ops[i] for i in program.op_nodes()))
    present.sort(key=lambda op: (op != "add", op != prefer))
    for op in present:
        node = next(i for i in program.op_nodes() if program.ops[i] == op)
        alone = alone_expression(program, node, inputs) or _alone_at_benign(program, node)
        if alone is None:
            continue
        expr, at = alone
        for leaf in compile_program(expr).variables:
            pattern = apply("add", expr, var(leaf))
            failures = check_alone(host, pattern, at, severity)
            if failures:
                return Blame(
                    "engine", op, str(pattern),
                    f"{op} overwrites the gradient of its argument instead of adding to it (= instead of +=): "
                    f"{pattern} at {format_point(compile_program(pattern).variables, at)}: {failures[0].message}",
                    node, at,
                )
    return None


def _forward_failure(program: Program, point: Sequence[float], outcome: EngineOutcome, severity: str) -> Verdict | None:
    """The failure at ``point`` if it is one of the forward pass (a value, or an
    exception or junk while computing it), which no backward pass can cause."""
    if outcome.status in ("exception", "invalid") and outcome.stage == "forward":
        return Verdict(outcome.status, "error", "engine", outcome.error)
    # A wrong value makes the gradients built on it wrong too: the value decides.
    wrong_values = [v for v in _keep(judge_point(truth_at(program, point), outcome, program.variables), severity) if v.kind == "value"]
    return wrong_values[0] if wrong_values else None


def blame_engine(
    host: Any,
    program: Program,
    point: Sequence[float],
    outcome: EngineOutcome | None,
    reference_values: Sequence[float],
    severity: str = "error",
    prefer: str | None = None,
) -> Blame:
    """Blame an op (or the backward pass) for a failure at ``point``.

    Args:
        outcome: the engine's outcome there, with node values and ``.grad`` s if it
            recorded them (``host.run(program, [point], record=True)``); None after
            a crash or a hang (then the reference's node values stand in for what
            the engine would have seen).
        reference_values: the exact value of every node, as floats.
        severity: ``"warning"`` to blame a warning (a robustness or precision issue).
        prefer: check nodes of this op first (when shrinking a finding about it).

    Example:
        >>> from engine import Value
        >>> from verifier.hosts import InProcess
        >>> from verifier.parsing import parse
        >>> class DropsUpstream(Value):  # mul's backward forgets * out.grad
        ...     def __mul__(self, other):
        ...         other = other if isinstance(other, Value) else DropsUpstream(other)
        ...         out = DropsUpstream(self.data * other.data, (self, other), "*")
        ...         def _backward():
        ...             self.grad += other.data
        ...             other.grad += self.data
        ...         out._backward = _backward
        ...         return out
        >>> program = compile_program(parse("tanh(x * y)"))
        >>> host = InProcess(DropsUpstream)
        >>> [outcome] = host.run(program, [(0.5, 2.0)], record=True)
        >>> blame_engine(host, program, (0.5, 2.0), outcome, truth_at(program, (0.5, 2.0)).node_values).op
        'mul'
    """
    inputs: Sequence[Any] = reference_values
    if outcome is not None and outcome.node_values is not None:
        # Where the engine built the node, use what it saw; past a failure, the truth.
        seen = list(outcome.node_values) + [None] * (len(program) - len(outcome.node_values))
        inputs = [v if isinstance(v, float) else truth for v, truth in zip(seen, reference_values)]
    first = outcome.node if outcome is not None else None
    for i in _op_order(program, first, prefer):
        found = _try(host, program, i, alone_expression(program, i, inputs), severity, "")
        if found is None and i == first:
            # This op raised or returned junk; if its inputs here were garbage from
            # upstream, see whether it misbehaves on ordinary ones.
            found = _try(host, program, i, _alone_at_benign(program, i), severity, " even on ordinary inputs")
        if found is not None:
            return found
    if outcome is None:  # a crash or a hang: which op does it alone?
        for i in _op_order(program, None, prefer):
            found = _try(host, program, i, _alone_at_benign(program, i), severity, " on ordinary inputs")
            if found is not None:
                return found
        return Blame("engine", None, "", "no op crashes or hangs alone; only this whole expression does")
    if outcome.node_values is not None:
        found = _wrong_value(program, outcome, inputs, severity)
        if found is not None:
            return found
    supported = set(getattr(host, "supported", ()))
    if "mul" in supported:
        adjoints = adjoints_at(program, reference_values)
        checked: set[tuple[str, tuple[float, ...], float]] = set()
        for i in _upstream_order(program, prefer):
            alone = alone_expression(program, i, inputs)
            if alone is None:
                continue
            incoming = [(g, why) for g, why in _incoming(outcome, adjoints, i) if (str(alone[0]), alone[1], g) not in checked]
            checked.update((str(alone[0]), alone[1], g) for g, _ in incoming)
            found = _under_upstream(host, program, i, alone, incoming, severity) if incoming else None
            if found is not None:
                return found
    if "add" in supported:
        found = _overwrites(host, program, inputs, severity, prefer)
        if found is not None:
            return found
    forward = _forward_failure(program, point, outcome, severity)
    if forward is not None:
        return Blame("engine", None, "",
                     "the forward pass is wrong here, yet every op computes its value right alone at the inputs "
                     f"the engine gave it (a backward pass cannot cause this): {forward.message}")
    return Blame(
        "engine", "backward", "",
        "every op is right alone, under the incoming gradients it received and under others, and accumulates "
        "correctly, so the backward pass itself (its traversal order or repeated visits of shared nodes) is wrong",
    )
