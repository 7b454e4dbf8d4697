"""The one op table: everything crossgrad knows about each operation.

Adding an op is one entry in :data:`OPS`. Each entry says how to build the op in
every backend (the engine protocol, SymPy, torch, mpmath and vectorised float64
numpy), where it is defined, where it has kinks, and how much float64 rounding
noise one evaluation of it may carry. It holds no derivatives: those come only from
SymPy (see :mod:`verifier.local`) and from the engines themselves.

Example:
    >>> from verifier.ops import OPS
    >>> OPS["tanh"].arity, OPS["tanh"].method
    (1, 'tanh')
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["Op", "OPS", "Constraint", "op_names", "written_ops", "DEFAULT_OPS"]


class _Lazy:
    """A module imported on first attribute access.

    Engine sandboxes import this table but must not pay for importing SymPy or torch.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: Any = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


sympy = _Lazy("sympy")
torch = _Lazy("torch")
mpmath = _Lazy("mpmath")

U = 2.0**-53  # unit roundoff of float64


@dataclass(frozen=True)
class Constraint:
    """Where an op is defined, on one argument or on a function of its arguments.

    ``kind`` is ``"positive"`` (x > 0), ``"nonnegative"`` (x >= 0) or ``"nonzero"``.
    ``gradient_only`` marks edges where the value exists but the derivative is
    infinite (sqrt at 0). A defined op's constraint may be on a function of its
    arguments (``1 + x > 0`` for log1p): ``function(m, argv)`` computes it and
    ``slopes(m, argv)`` its derivatives, which turn the arguments' noise into its own.
    """

    arg: int
    kind: str
    gradient_only: bool = False
    function: Callable[..., Any] | None = None
    slopes: Callable[..., tuple[Any, ...]] | None = None
    text: str = ""

    def holds(self, x: Any) -> Any:
        """Whether ``x`` (a float, an mpf or a numpy array) satisfies the constraint."""
        if self.kind == "positive":
            return x > 0
        if self.kind == "nonnegative":
            return x >= 0
        return x != 0

    def margin(self, x: Any) -> Any:
        """How far ``x`` is from the edge of the domain (signed, but for nonzero)."""
        return abs(x) if self.kind == "nonzero" else x

    def at(self, m: Any, argv: Any) -> Any:
        """The constrained quantity at these arguments."""
        return argv[self.arg] if self.function is None else self.function(m, argv)

    def noise(self, m: Any, argv: Any, noises: Any) -> Any:
        """How much the constrained quantity may be off, given its arguments' noise."""
        if self.slopes is None:
            return noises[self.arg]
        return sum(m.fabs(d) * e for d, e in zip(self.slopes(m, argv), noises))


@dataclass(frozen=True)
class Op:
    """One operation and how every backend builds it.

    Attributes:
        name: the op's name in expressions, findings and blame ("tanh").
        arity: 1 or 2 arguments (pow's exponent is a parameter, not an argument).
        symbol: the infix symbol for operators ("+"), "" for function-style ops.
        method: the engine method for function-style ops ("tanh"), "" for operators.
        dunders: the engine attributes whose presence means the op is supported.
        engine, sympy, torch, mpmath, numpy: builders ``f(*args, p)``; ``p`` is the
            exponent of pow and ``None`` elsewhere.
        domain: ``p -> tuple[Constraint, ...]``: where the op is defined.
        formula: the SymPy formula a defined op was made from ("" for built-ins);
            kinks (relu at 0) are found in every op's SymPy formula, see
            :mod:`verifier.local`.
        conventions: what the big frameworks give at the op's kinks (not bugs).
        ulps: rounding of one evaluation, in units of ``value_scale``.
        value_scale: ``(m, args, out, p) -> |scale|`` of the terms the value is made
            of; ``m`` is the math module to use (numpy for float64 arrays, mpmath).
        grad_scales: per argument, ``(m, args, out, p) -> |scale|`` of the terms of
            the local derivative; valid formulas (tanh' as 1 - t*t or (1 - t)*(1 + t),
            cos' as a shifted sin) all err by a few ulps of it.
        intermediates: ``(m, args, p) -> values`` that valid formulas of the
            derivative compute on the way (micrograd's a * b**-1 computes b**-2): if
            one over- or underflows, the gradient is not representable there.
        adjoint_intermediates: ``(m, args, g) -> values`` the same, for terms that
            involve the node's adjoint ``g`` (micrograd's a * g in a / b).
        intermediate_args: the arguments whose local derivative those formulas
            compute (``()``: all): only those partials are lost with them.
        value_intermediates: ``(m, args, p) -> values`` that valid formulas of the
            value compute on the way (micrograd's a * b**-1): if one overflows, no
            float64 value of the op can be trusted there.
        monotone: the op is monotone on its domain, so ``f(a - e)`` and ``f(a + e)``
            bound its value when its input is ``a`` give or take ``e``.
        stable: a numerically stable way to compute the op and its derivative, for
            findings where an engine's formula breaks at extreme inputs.
        transcendental: evaluating it in mpmath costs as many bits as its argument's
            exponent (exp, sin): far beyond float64's range the reference leaves it
            unknown.
    """

    name: str
    arity: int
    symbol: str
    method: str
    dunders: tuple[str, ...]
    engine: Callable[..., Any]
    sympy: Callable[..., Any]
    torch: Callable[..., Any]
    mpmath: Callable[..., Any]
    numpy: Callable[..., Any]
    value_scale: Callable[..., Any]
    grad_scales: tuple[Callable[..., Any], ...]
    domain: Callable[[float | None], tuple[Constraint, ...]] = lambda p: ()
    intermediates: Callable[..., tuple[Any, ...]] = lambda m, args, p: ()
    adjoint_intermediates: Callable[..., tuple[Any, ...]] = lambda m, args, g: ()
    intermediate_args: tuple[int, ...] = ()
    value_intermediates: Callable[..., tuple[Any, ...]] = lambda m, args, p: ()
    formula: str = ""
    conventions: str = ""
    monotone: bool = False
    transcendental: bool = False
    stable: str = ""
    ulps: float = 2.0
    precedence: int = 9  # for printing: + - 1, * / 2, unary - 3, ** 4, calls 9


def _zero(m: Any, args: Any, out: Any, p: Any) -> Any:
    return 0.0


def _out(m: Any, args: Any, out: Any, p: Any) -> Any:
    return m.fabs(out)


def _pow_log(m: Any, x: Any, p: float) -> Any:
    # x**p may be computed as exp(p*log(x)): an ulp of p*log|x| in the exponent.
    return 1.0 + m.fabs(p * m.log(m.fabs(x) + 1e-300))


def _pow_domain(p: float | None) -> tuple[Constraint, ...]:
    assert p is not None
    if p == 0:
        # x**0 is 1 everywhere, but its derivative p * x**(p - 1) at 0 is 0 * inf:
        # engines differ (torch 0, JAX nan, micrograd raises), so none is judged.
        return (Constraint(0, "nonzero", gradient_only=True),)
    if float(p).is_integer():
        return () if p >= 0 else (Constraint(0, "nonzero"),)
    if p > 1:
        return (Constraint(0, "nonnegative"),)
    if p > 0:  # value at 0 is 0, the slope there is infinite
        return (Constraint(0, "nonnegative"), Constraint(0, "positive", gradient_only=True))
    return (Constraint(0, "positive"),)


def _pow_numpy(a: Any, p: float) -> Any:
    return np.power(a, p)


def _stable_sigmoid(a: Any) -> Any:
    # exp of a non-positive number never overflows; both branches are exact forms.
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _sin_scale(m: Any, args: Any, out: Any, p: Any) -> Any:
    # An engine may reduce the argument differently (cos(x - pi/2)): that costs an
    # ulp of |x| (and of pi/2) in the argument, whatever the output's size.
    return m.fabs(out) + m.fabs(args[0]) + 2.0


OPS: dict[str, Op] = {
    op.name: op
    for op in (
        Op(
            "add", 2, "+", "", ("__add__",),
            engine=lambda a, b, p: a + b, sympy=lambda a, b, p: a + b,
            torch=lambda a, b, p: a + b, mpmath=lambda a, b, p: a + b,
            numpy=lambda a, b, p: a + b,
            value_scale=lambda m, args, out, p: m.fabs(args[0]) + m.fabs(args[1]),
            grad_scales=(_zero, _zero), precedence=1,
        ),
        Op(
            "sub", 2, "-", "", ("__sub__",),
            engine=lambda a, b, p: a - b, sympy=lambda a, b, p: a - b,
            torch=lambda a, b, p: a - b, mpmath=lambda a, b, p: a - b,
            numpy=lambda a, b, p: a - b,
            value_scale=lambda m, args, out, p: m.fabs(args[0]) + m.fabs(args[1]),
            grad_scales=(_zero, _zero), precedence=1,
        ),
        Op(
            "mul", 2, "*", "", ("__mul__",),
            engine=lambda a, b, p: a * b, sympy=lambda a, b, p: a * b,
            torch=lambda a, b, p: a * b, mpmath=lambda a, b, p: a * b,
            numpy=lambda a, b, p: a * b,
            value_scale=_out,
            grad_scales=(_zero, _zero), precedence=2,
        ),
        Op(
            "div", 2, "/", "", ("__truediv__",),
            engine=lambda a, b, p: a / b, sympy=lambda a, b, p: a / b,
            torch=lambda a, b, p: a / b, mpmath=lambda a, b, p: a / b,
            numpy=lambda a, b, p: a / b,
            domain=lambda p: (Constraint(1, "nonzero"),),
            # a / b may be computed as a * b**-1: two roundings of |a / b|.
            value_scale=_out,
            grad_scales=(
                lambda m, args, out, p: m.fabs(1.0 / args[1]),
                lambda m, args, out, p: m.fabs(out / args[1]),
            ),
            # d/db = -a / b**2 may be computed through b*b, or (micrograd's a * b**-1)
            # through b**-2, after passing a * g back to b**-1; d/da = 1/b needs none.
            intermediates=lambda m, args, p: (args[1] * args[1], 1 / (args[1] * args[1])),
            adjoint_intermediates=lambda m, args, g: (args[0] * g,),
            intermediate_args=(1,),
            value_intermediates=lambda m, args, p: (1 / args[1],),
            ulps=3.0, precedence=2,
            stable='a / b as one division (a * b**-1 overflows at a subnormal b), and d/db as -(a / b) / b (b*b over- and underflows)',
        ),
        Op(
            "neg", 1, "-", "", ("__neg__",),
            engine=lambda a, p: -a, sympy=lambda a, p: -a, torch=lambda a, p: -a,
            mpmath=lambda a, p: -a, numpy=lambda a, p: -a,
            value_scale=_zero,
            grad_scales=(_zero,), precedence=3,
            monotone=True,
        ),
        Op(
            "pow", 1, "**", "", ("__pow__",),
            engine=lambda a, p: a**p,
            sympy=lambda a, p: a ** (sympy.Rational(p) if isinstance(p, (int, float)) else p),
            torch=lambda a, p: a**p,
            mpmath=lambda a, p: mpmath.power(a, mpmath.mpf(p)),
            numpy=_pow_numpy, domain=_pow_domain,
            value_scale=lambda m, args, out, p: m.fabs(out) * _pow_log(m, args[0], p),
            grad_scales=(
                lambda m, args, out, p: 0.0 if p == 0 else m.fabs(p * m.power(args[0], p - 1.0)) * _pow_log(m, args[0], p),
            ),
            intermediates=lambda m, args, p: (m.power(args[0], p - 1.0),),
            ulps=3.0, precedence=4,
            stable='x**p with the derivative p * x**(p - 1) in one power (exp(p * log(x)) loses digits)',
        ),
        Op(
            "exp", 1, "", "exp", ("exp",),
            engine=lambda a, p: a.exp(), sympy=lambda a, p: sympy.exp(a),
            torch=lambda a, p: torch.exp(a), mpmath=lambda a, p: mpmath.exp(a),
            numpy=lambda a, p: np.exp(a),
            value_scale=_out,
            grad_scales=(_out,),
            monotone=True,
            transcendental=True,
            stable='math.exp(x), with its derivative the value itself (it overflows only where exp(x) does, x > 709.78)',
        ),
        Op(
            "log", 1, "", "log", ("log",),
            engine=lambda a, p: a.log(), sympy=lambda a, p: sympy.log(a),
            torch=lambda a, p: torch.log(a), mpmath=lambda a, p: mpmath.log(a),
            numpy=lambda a, p: np.log(a),
            domain=lambda p: (Constraint(0, "positive"),),
            value_scale=lambda m, args, out, p: m.fabs(out) + 1.0,
            grad_scales=(lambda m, args, out, p: m.fabs(1.0 / args[0]),),
            monotone=True,
            stable='math.log(x), with the derivative 1 / x',
        ),
        Op(
            "tanh", 1, "", "tanh", ("tanh",),
            engine=lambda a, p: a.tanh(), sympy=lambda a, p: sympy.tanh(a),
            torch=lambda a, p: torch.tanh(a), mpmath=lambda a, p: mpmath.tanh(a),
            numpy=lambda a, p: np.tanh(a),
            value_scale=_out,
            # 1 - t*t: its terms are of size 1 even where the result is tiny.
            grad_scales=(lambda m, args, out, p: 1.0 + out * out,),
            monotone=True,
            transcendental=True,
            stable='math.tanh(x), with the derivative 1 - t*t of its result t ((exp(2x) - 1) / (exp(2x) + 1) cancels near 0 and overflows past 354.9)',
        ),
        Op(
            "relu", 1, "", "relu", ("relu",),
            engine=lambda a, p: a.relu(), sympy=lambda a, p: sympy.Max(0, a),
            torch=lambda a, p: torch.relu(a), mpmath=lambda a, p: max(a, 0),
            numpy=lambda a, p: np.maximum(a, 0.0),
            value_scale=_zero,
            grad_scales=(_zero,),
            monotone=True, conventions="relu'(0) = 0 in torch and JAX",
        ),
        Op(
            "sigmoid", 1, "", "sigmoid", ("sigmoid",),
            engine=lambda a, p: a.sigmoid(),
            sympy=lambda a, p: 1 / (1 + sympy.exp(-a)),
            torch=lambda a, p: torch.sigmoid(a),
            mpmath=lambda a, p: 1 / (1 + mpmath.exp(-a)),
            numpy=lambda a, p: _stable_sigmoid(a),
            value_scale=_out,
            # s * (1 - s): 1 - s cancels when s is near 1, an ulp of s.
            grad_scales=(_out,),
            ulps=3.0,
            monotone=True,
            transcendental=True,
            stable='1 / (1 + exp(-x)) for x >= 0 and exp(x) / (1 + exp(x)) for x < 0, with the derivative s * (1 - s)',
        ),
        Op(
            "sin", 1, "", "sin", ("sin",),
            engine=lambda a, p: a.sin(), sympy=lambda a, p: sympy.sin(a),
            torch=lambda a, p: torch.sin(a), mpmath=lambda a, p: mpmath.sin(a),
            numpy=lambda a, p: np.sin(a),
            value_scale=_sin_scale, grad_scales=(_sin_scale,),
            transcendental=True,
            stable='math.sin(x) and math.cos(x) (they reduce large arguments exactly)',
        ),
        Op(
            "cos", 1, "", "cos", ("cos",),
            engine=lambda a, p: a.cos(), sympy=lambda a, p: sympy.cos(a),
            torch=lambda a, p: torch.cos(a), mpmath=lambda a, p: mpmath.cos(a),
            numpy=lambda a, p: np.cos(a),
            value_scale=_sin_scale, grad_scales=(_sin_scale,),
            transcendental=True,
            stable='math.cos(x) and -math.sin(x) (they reduce large arguments exactly)',
        ),
        Op(
            "sqrt", 1, "", "sqrt", ("sqrt",),
            engine=lambda a, p: a.sqrt(), sympy=lambda a, p: sympy.sqrt(a),
            torch=lambda a, p: torch.sqrt(a), mpmath=lambda a, p: mpmath.sqrt(a),
            numpy=lambda a, p: np.sqrt(a),
            domain=lambda p: (Constraint(0, "nonnegative"), Constraint(0, "positive", gradient_only=True)),
            value_scale=_out,
            grad_scales=(lambda m, args, out, p: m.fabs(0.5 / out),),
            monotone=True,
            stable='math.sqrt(x), with the derivative 0.5 / sqrt(x)',
        ),
    )
}

DEFAULT_OPS: tuple[str, ...] = tuple(OPS)
FUNCTIONS: tuple[str, ...] = tuple(name for name, op in OPS.items() if op.method)
BINARY_SYMBOLS: dict[str, str] = {op.symbol: name for name, op in OPS.items() if op.arity == 2}


def written_ops(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """The op names an op list writes out (``"+gelu, tanh"``: gelu, tanh), ``all`` included.

    Example:
        >>> written_ops("+gelu, tanh")
        ('gelu', 'tanh')
    """
    parts = spec.split(",") if isinstance(spec, str) else spec or ()
    return tuple(name for name in (part.strip().removeprefix("+").strip() for part in parts) if name)


def op_names(spec: str | None) -> tuple[str, ...]:
    """Parse a comma-separated op list ("tanh,mul") against the table.

    Library ops (see :mod:`verifier.library`) are defined on first mention;
    ``+name`` adds an op to the default ones, ``all`` is every built-in and
    library op.

    Example:
        >>> op_names("mul, tanh")
        ('mul', 'tanh')
        >>> op_names("+softplus")[-1]
        'softplus'

    Raises:
        ValueError: naming the unknown op and listing the known ones.
    """
    if spec is None or not spec.strip():
        return DEFAULT_OPS
    from verifier.library import LIBRARY

    parts = [part.strip() for part in spec.split(",") if part.strip()]
    names: list[str] = []
    if parts and all(part.startswith("+") for part in parts):
        names.extend(DEFAULT_OPS)
    for name in written_ops(spec):
        names.extend((*DEFAULT_OPS, *LIBRARY) if name == "all" else (name,))
    names = list(dict.fromkeys(names))
    for name in names:
        if name not in OPS and name in LIBRARY:
            from verifier.define import define_op

            define_op(name)
        if name not in OPS:
            known = ", ".join((*OPS, *(n for n in LIBRARY if n not in OPS)))
            raise ValueError(f"unknown op {name!r}; expected some of: {known} (or 'all', or +name to add to the defaults)")
    return tuple(names)
