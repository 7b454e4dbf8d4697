"""Ops from a formula: :func:`define_op` turns SymPy mathematics into an op-table entry.

From the formula alone come the op's arity (its arguments), its value in mpmath,
numpy and torch, its exact local derivatives (via :mod:`verifier.local`, as for every
op), its kinks and their one-sided derivatives (``Abs``, ``Max``, ``Min``, ``sign``,
``Heaviside``, ``Piecewise``), its domain (``log``, ``sqrt``, powers, division by zero,
``tan``, ``asin``: each constraint SymPy cannot prove always holds), monotonicity
where SymPy proves it, and a noise floor from the formula's own structure: every
sub-expression ``s`` a float64 evaluation rounds costs an ulp of ``|s|`` times
``|d f / d s|`` (a running error bound), for the value and for each derivative.

What SymPy cannot tell, the caller declares (``domain=``, ``kinks=``, ``monotone=``,
``torch=``); the definition lists what was declared in :attr:`OpDefinition.assumed`.
A defined op enters :data:`verifier.ops.OPS` and from then on is an op like the
built-in ones: generated, shrunk, blamed, judged by every oracle, printed and parsed
(``softplus(x0)``); an engine offers it as a method (``x.softplus()``,
``x.maximum(y)``), named otherwise with ``method=``.

Example:
    >>> d = define_op("softplus", "log(1 + exp(x))")
    >>> d.arguments, d.domain, d.kinks, d.monotone
    (('x',), (), (), True)
    >>> define_op("maximum", "Max(x, y)").kinks
    ('x - y = 0',)
"""

from __future__ import annotations

import functools
import keyword
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import mpmath
import numpy as np
import sympy

from verifier.local import NUMPY_MODULES, exactly
from verifier.formats import current as current_format
from verifier.formula import FormulaError, parse_condition, parse_formula
from verifier.ops import OPS, Constraint, Op

__all__ = ["OpDefinition", "define_op", "definitions", "forget_ops", "relation_sides", "restore", "engine_specs", "register_engine_side"]

_SYMBOLS = sympy.symbols("a b", real=True)  # the names verifier.local differentiates in
BUILT_IN = frozenset(OPS)
RESERVED = frozenset({"var", "const"}) | BUILT_IN
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Functions whose mpmath evaluation costs as many bits as their argument's exponent.
_TRANSCENDENTAL = (sympy.exp, sympy.sin, sympy.cos, sympy.tan, sympy.sinh, sympy.cosh, sympy.tanh, sympy.erf, sympy.erfc)
_DEFINED: dict[str, OpDefinition] = {}



@dataclass(frozen=True)
class OpDefinition:
    """What :func:`define_op` derived (and what it was told) about one op.

    Attributes:
        name, formula, arguments: the op, its formula as given, its argument names
            in order (the formula's free symbols, sorted, unless given).
        method: the engine method that computes it (``x.softplus()``).
        derivatives: the exact local derivative per argument, as text.
        domain: where it is defined, e.g. ``("x + 1 > 0",)``; ``()``: everywhere.
        kinks: where its derivative jumps, e.g. ``("x - y = 0",)``.
        monotone: proved (or declared) monotone, for one-argument ops.
        assumed: what was declared rather than derived from the formula.
        conventions: what the big frameworks give at the kinks (shown as
            conventions, never as bugs).
        stable: a numerically stable way to compute it (the hint in findings).
        relations: identities the op satisfies, as ``lhs == rhs`` in the expression
            syntax (``softplus(x) - softplus(-x) == x``): the property suites check
            that the engine's op keeps them (checked against the formula first).
        declared: the declarations, as plain data (JSON), so that :func:`restore`
            rebuilds the same op (a torch function cannot travel; its formula does).
    """

    name: str
    formula: str
    arguments: tuple[str, ...]
    method: str
    derivatives: tuple[str, ...]
    domain: tuple[str, ...]
    kinks: tuple[str, ...]
    monotone: bool
    assumed: tuple[str, ...] = ()
    conventions: str = ""
    stable: str = ""
    relations: tuple[str, ...] = ()
    declared: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """Plain data: everything :func:`restore` needs, and what was derived."""
        return {"name": self.name, "formula": self.formula, "arguments": list(self.arguments), "method": self.method,
                "derivatives": list(self.derivatives), "domain": list(self.domain), "kinks": list(self.kinks),
                "monotone": self.monotone, "assumed": list(self.assumed), "conventions": self.conventions,
                "stable": self.stable, "relations": list(self.relations), "declared": dict(self.declared)}


@functools.lru_cache(maxsize=1024)
def _compiled(expr: Any, module: str, arity: int) -> Callable[..., Any]:
    """``expr`` as a function of the op's arguments, for numpy arrays or mpmath.

    lambdify prints SymPy's own tree (built by the whitelist parser) as code: the
    user's text is never evaluated."""
    function = sympy.lambdify(_SYMBOLS[:arity], expr, modules=NUMPY_MODULES if module == "numpy" else module)
    if module != "numpy":
        return exactly(function)  # the formula may cancel at 50 digits: settle its digits

    def vectorised(*args: Any) -> Any:
        with np.errstate(all="ignore"):
            return np.asarray(function(*args), dtype=float) + np.zeros(np.shape(args[0]))

    return vectorised


def _evaluate(expr: Any, m: Any, args: Sequence[Any]) -> Any:
    """``expr`` at ``args`` with the math module ``m`` of the noise model (numpy
    arrays, mpmath numbers, or plain floats, computed through mpmath)."""
    if m is np:
        return _compiled(expr, "numpy", len(args))(*args)
    try:
        result = _compiled(expr, "mpmath", len(args))(*(mpmath.mpf(a) for a in args))
    except ZeroDivisionError:
        result = mpmath.inf
    return result if m is mpmath else float(result)


def _cancelled(expr: Any) -> Any:
    """``expr`` with its fractions over one denominator and cancelled where SymPy
    can (``1/(e + 1) - e/(e + 1)**2`` is ``1/(e + 1)**2``): mpmath at 50 digits
    cannot evaluate the difference of two nearly equal terms at exp(1e150)."""
    try:
        cancelled = sympy.cancel(expr)
    except (sympy.PolynomialError, TypeError, ValueError):  # Piecewise, Max...: left as it is
        return expr
    return cancelled if sympy.count_ops(cancelled) <= 2 * sympy.count_ops(expr) + 4 else expr


def _noise_scale(f: Any) -> tuple[Any, Any]:
    """``(sum |s| * |d f / d s|, sum |d f / d s|)`` over the sub-expressions ``s`` of
    ``f``: how much rounding each step of a float evaluation of ``f`` can move the
    result (in ulps of ``|s|``), and how much an intermediate that underflows can
    (by the format's subnormal spacing, or its smallest normal where it flushes:
    XLA's silu(-710) = -710 * sigmoid(-710) is -0, its sigmoid being flushed)."""
    hole = sympy.Dummy("s")
    terms, slopes = [], []
    for s in sorted(set(sympy.preorder_traversal(f)), key=sympy.default_sort_key):
        if s.is_Atom or not isinstance(s, sympy.Expr) or not s.free_symbols:
            continue
        sensitivity = sympy.diff(f.xreplace({s: hole}), hole).xreplace({hole: s})
        sensitivity = _cancelled(sensitivity.replace(sympy.DiracDelta, lambda *a: sympy.S.Zero))
        terms.append(sympy.Abs(s) * sympy.Abs(sensitivity))
        slopes.append(sympy.Abs(sensitivity))
    return sympy.Add(*terms), sympy.Add(*slopes)


ULPS = 2.0  # an op's rounding, in ulps of its noise scale (verifier.ops.Op.ulps)


def _scale(exprs: tuple[Any, Any]) -> Callable[..., Any]:
    rounding, underflow = exprs

    def scale(m: Any, args: Sequence[Any], out: Any, p: Any) -> Any:
        number_format = current_format()
        lost = number_format.smallest_normal if number_format.flushes_subnormals else number_format.subnormal_spacing
        # In ulps, as the noise model multiplies it: ULPS * u * (rounding + ...) + lost * underflow.
        return _evaluate(rounding, m, args) + lost / (ULPS * number_format.unit_roundoff) * _evaluate(underflow, m, args)

    return scale


def _proved(g: Any, kind: str) -> bool:
    test = {"positive": g.is_positive, "nonnegative": g.is_nonnegative, "nonzero": g.is_nonzero}[kind]
    return bool(test)


def _constraint(g: Any, kind: str, gradient_only: bool, arity: int, names: dict[Any, str]) -> Constraint:
    text = f"{sympy.sstr(g.xreplace(names))} {dict(positive='>', nonnegative='>=', nonzero='!=')[kind]} 0"
    for k in range(arity):
        if g == _SYMBOLS[k]:
            return Constraint(k, kind, gradient_only, text=text)
    slopes = [sympy.diff(g, s) for s in _SYMBOLS[:arity]]
    return Constraint(
        0, kind, gradient_only,
        function=lambda m, argv: _evaluate(g, m, argv),
        slopes=lambda m, argv: tuple(_evaluate(d, m, argv) for d in slopes),
        text=text,
    )


def _derived_domain(f: Any) -> list[tuple[Any, str, bool]]:
    """``(g, kind, gradient_only)`` for every edge of the formula's domain."""
    found = []
    for node in sympy.preorder_traversal(f):
        if isinstance(node, sympy.log):
            found.append((node.args[0], "positive", False))
        elif isinstance(node, sympy.tan):
            found.append((sympy.cos(node.args[0]), "nonzero", False))
        elif isinstance(node, (sympy.asin, sympy.acos)):
            found.append((1 - node.args[0] ** 2, "nonnegative", False))
            found.append((1 - node.args[0] ** 2, "positive", True))
        elif isinstance(node, sympy.Pow):
            base, exponent = node.args
            if not base.free_symbols:
                continue
            if not exponent.is_number:
                found.append((base, "positive", False))
            elif exponent.is_integer:
                if exponent.is_negative:
                    found.append((base, "nonzero", False))
            elif exponent.is_positive:
                found.append((base, "nonnegative", False))
                if exponent < 1:
                    found.append((base, "positive", True))
            else:
                found.append((base, "positive", False))
    return found


def _domain(f: Any, declared: Sequence[str], arity: int, names: dict[Any, str], symbols: dict[str, Any]) -> tuple[Constraint, ...]:
    edges = [(g, kind, only) for g, kind, only in _derived_domain(f) if not _proved(g, kind)]
    for text in declared:
        relation = parse_condition(text).xreplace(symbols)
        g = relation.lhs - relation.rhs
        kind = {sympy.Gt: "positive", sympy.Ge: "nonnegative", sympy.Lt: "positive", sympy.Le: "nonnegative"}.get(type(relation))
        if isinstance(relation, (sympy.Lt, sympy.Le)):
            g = -g
        edges.append((sympy.expand(g), kind, False))
    unique = list(dict.fromkeys(edges))
    return tuple(_constraint(g, kind, only, arity, names) for g, kind, only in unique)


def _monotone(f: Any, arity: int, domain: tuple[Constraint, ...]) -> bool:
    if arity != 1 or domain:
        return False  # tan is monotone on each piece of its domain, not across it
    try:
        return bool(sympy.is_monotonic(f, sympy.Reals))
    except Exception:  # noqa: BLE001 - SymPy gives up in many ways; unproved is "no"
        return False


def _torch_function(name: str) -> Callable[..., Any]:
    """``"torch.nn.functional.gelu"`` as the function (looked up attribute by
    attribute in torch, never evaluated)."""
    import torch

    parts = name.split(".")
    if parts[0] != "torch" or not all(p.isidentifier() and not p.startswith("_") for p in parts):
        raise ValueError(f"torch={name!r}: expected a torch function's name such as 'torch.nn.functional.gelu'")
    found: Any = torch
    for part in parts[1:]:
        found = getattr(found, part, None)
    if not callable(found):
        raise ValueError(f"torch={name!r} is not a function of this torch ({torch.__version__})")
    return found


def _torch_builder(f: Any, arity: int, given: Callable[..., Any] | str | None) -> Callable[..., Any]:
    import torch

    def tensor(x: Any) -> Any:
        return x if isinstance(x, torch.Tensor) else torch.tensor(float(x), dtype=torch.float64)

    if given is not None:
        function = _torch_function(given) if isinstance(given, str) else given
    else:
        # torch functions take tensors, not numbers: constants such as sqrt(2) become floats.
        f = f.replace(lambda e: isinstance(e, sympy.Expr) and e.is_number and not e.is_Atom, lambda e: e.evalf(20))
        # lambdify prints Max and Abs as Python's max and abs: torch's own take tensors.
        functions = {"max": lambda a, b: torch.maximum(tensor(a), tensor(b)),
                     "min": lambda a, b: torch.minimum(tensor(a), tensor(b)), "abs": torch.abs}
        function = sympy.lambdify(_SYMBOLS[:arity], f, modules=[functions, "torch"])

    def build(*args: Any) -> Any:
        return function(*(tensor(a) for a in args[:arity]))

    return build


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not _IDENTIFIER.match(name) or keyword.iskeyword(name):
        raise ValueError(f"{what} {name!r} is not a name (expected e.g. 'softplus')")
    return name


def define_op(
    name: str,
    formula: str | None = None,
    *,
    arguments: Sequence[str] | None = None,
    method: str | None = None,
    domain: Sequence[str] = (),
    kinks: Sequence[str] = (),
    monotone: bool | None = None,
    torch: Callable[..., Any] | str | None = None,
    stable: str = "",
    conventions: str = "",
    relations: Sequence[str] = (),
) -> OpDefinition:
    """Define an op from its formula and add it to the op table.

    Args:
        name: the op's name in expressions and reports (``"softplus"``).
        formula: SymPy mathematics in Python syntax (see :mod:`verifier.formula`),
            e.g. ``"log(1 + exp(x))"``, ``"Max(x, y)"``; ``None`` takes the op of that
            name from the built-in library (:mod:`verifier.library`).
        arguments: the argument names in order (default: the formula's, sorted).
        method: the engine's method for it (default: ``name``).
        domain: edges SymPy cannot find, as comparisons (``"x > -1"``).
        kinks: kinks SymPy cannot find, as the functions that are 0 there (``"x - 1"``).
        monotone: declare (or deny) monotonicity SymPy cannot prove.
        torch: a function of torch tensors computing the op, for the torch oracle,
            or its name (``"torch.nn.functional.gelu"``); default: the formula in torch.
        stable, conventions: texts for findings and reports.
        relations: identities of the op for the property suites
            (``"softplus(x) - softplus(-x) == x"``), checked here against the formula.

    Returns:
        The :class:`OpDefinition`, with what was derived and what was assumed.

    Raises:
        ValueError: (a :class:`~verifier.formula.FormulaError` for the formula) one
            line naming the bad value and what was expected.

    Example:
        >>> d = define_op("leaky_relu", "Piecewise((x, x > 0), (0.01*x, True))")
        >>> d.kinks, d.derivatives
        (('x = 0',), ('Piecewise((1, x > 0), (1/100, True))',))
    """
    _check_name(name, "op name")
    if name in RESERVED:
        raise ValueError(f"op name {name!r} is a built-in op; choose another name")
    if formula is None:
        from verifier.library import LIBRARY

        if name not in LIBRARY:
            raise ValueError(f"op {name!r} has no formula and is not in the library; expected a formula or one of: {', '.join(LIBRARY)}")
        entry = dict(LIBRARY[name])
        formula = entry.pop("formula")
        for key, value in (("method", method), ("domain", domain), ("kinks", kinks), ("monotone", monotone), ("torch", torch),
                           ("stable", stable), ("conventions", conventions), ("arguments", arguments), ("relations", relations)):
            if value:
                entry[key] = value
        return define_op(name, formula, **entry)
    method = _check_name(method or name, "method")
    expr, found = parse_formula(formula)
    order = tuple(arguments) if arguments is not None else found
    for argument in order:
        _check_name(argument, "argument")
    if set(found) - set(order):
        raise FormulaError(f"formula {formula!r} uses {', '.join(sorted(set(found) - set(order)))}, which is not among the arguments ({', '.join(order)})")
    if not 1 <= len(order) <= 2 or len(set(order)) != len(order):
        raise FormulaError(f"formula {formula!r}: an op takes 1 or 2 distinct arguments, got {len(order)} ({', '.join(order) or 'none'})")
    arity = len(order)
    symbols = {n: sympy.Symbol(n, real=True) for n in order}
    f = expr.xreplace({symbols[n]: _SYMBOLS[k] for k, n in enumerate(order)})
    names = {_SYMBOLS[k]: symbols[n] for k, n in enumerate(order)}
    canonical = {symbols[n]: _SYMBOLS[k] for k, n in enumerate(order)}

    from verifier.local import kink_functions

    try:
        constraints = _domain(f, domain, arity, names, canonical)
        found_kinks = list(kink_functions(f))
        for text in kinks:
            g, extra = parse_formula(text)
            if set(extra) - set(order):
                raise FormulaError(f"kink {text!r} uses {', '.join(sorted(set(extra) - set(order)))}, not an argument of {name}")
            found_kinks.append(g.xreplace(canonical))
    except TypeError as error:  # SymPy refusing a combination (a comparison of a non-real)
        raise FormulaError(f"formula {formula!r}: {error}") from None
    derivatives = [sympy.diff(f, s).replace(sympy.DiracDelta, lambda *a: sympy.S.Zero) for s in _SYMBOLS[:arity]]
    proved = _monotone(f, arity, constraints)
    assumed = [f"domain: {t}" for t in domain] + [f"kink: {t} = 0" for t in kinks]
    if monotone is not None and monotone != proved:
        assumed.append(f"{'monotone' if monotone else 'not monotone'} (declared)")
    if torch is not None:
        assumed.append(f"torch: {torch if isinstance(torch, str) else getattr(torch, '__qualname__', 'the given function')} computes the formula")
    value_scale = _noise_scale(f)
    grad_scales = tuple(_noise_scale(d) for d in derivatives)
    spec = Op(
        name, arity, "", method, (method,),
        engine=_engine_call(method),
        sympy=lambda *args: f.xreplace(dict(zip(_SYMBOLS, args[:arity]))),
        torch=_drop_param(_torch_builder(f, arity, torch)),
        mpmath=_drop_param(_compiled(f, "mpmath", arity)),
        numpy=_drop_param(_compiled(f, "numpy", arity)),
        value_scale=_scale(value_scale),
        grad_scales=tuple(_scale(s) for s in grad_scales),
        domain=lambda p: constraints,
        monotone=proved if monotone is None else monotone,
        transcendental=f.has(*_TRANSCENDENTAL),
        formula=formula, conventions=conventions, stable=stable, ulps=ULPS,
    )
    declared = {k: v for k, v in (("domain", list(domain)), ("kinks", list(kinks)), ("monotone", monotone),
                                  ("torch", torch if isinstance(torch, str) else None),
                                  ("arguments", list(order) if arguments is not None else None)) if v not in (None, [])}
    definition = OpDefinition(
        name=name, formula=formula, arguments=order, method=method,
        derivatives=tuple(sympy.sstr(d.xreplace(names)) for d in derivatives),
        domain=tuple(c.text for c in constraints),
        kinks=tuple(f"{sympy.sstr(g.xreplace(names))} = 0" for g in found_kinks),
        monotone=spec.monotone, assumed=tuple(assumed), conventions=conventions, stable=stable,
        relations=tuple(relations), declared=declared,
    )
    previous = OPS.get(name), _DEFINED.get(name)
    _register(spec, definition)
    try:
        for relation in relations:
            _check_relation(name, relation)
    except ValueError:
        _unregister(name, *previous)
        raise
    return definition


def relation_sides(relation: str) -> tuple[Any, Any]:
    """The two expressions of ``"lhs == rhs"`` (parsed by the expression parser).

    Example:
        >>> _ = define_op("softplus")
        >>> [str(e) for e in relation_sides("softplus(x) - softplus(-x) == x")]
        ['softplus(x) - softplus(-x)', 'x']
    """
    from verifier.parsing import parse

    if not isinstance(relation, str) or relation.count("==") != 1:
        raise ValueError(f"relation {relation!r}: expected 'lhs == rhs', e.g. 'softplus(x) - softplus(-x) == x'")
    left, right = relation.split("==")
    return parse(left), parse(right)


def _check_relation(name: str, relation: str) -> None:
    """A relation must hold for the formula (at a few ordinary points, in mpmath)."""
    from verifier.expr import compile_program
    from verifier.reference import exact

    lhs, rhs = relation_sides(relation)
    if name not in {n.op for side in (lhs, rhs) for n in side.nodes()}:
        raise ValueError(f"relation {relation!r} does not use the op {name}")
    variables = sorted(set(lhs.variables) | set(rhs.variables))
    for point in ((0.3, 0.8), (-1.1, 0.45), (2.2, -0.6)):
        at = dict(zip(variables, point))
        left, right = (exact(compile_program(e), [at[v] for v in e.variables]).value for e in (lhs, rhs))
        if math.isfinite(left) and math.isfinite(right) and abs(left - right) > 1e-12 * (1 + abs(left)):
            raise ValueError(f"relation {relation!r} does not hold for {name}'s formula at "
                             f"{', '.join(f'{v}={x}' for v, x in at.items())}: {left!r} != {right!r}")


def _engine_call(method: str) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        *values, _ = args  # the last is the (unused) parameter slot of pow
        return getattr(values[0], method)(*values[1:])

    return call


def _drop_param(function: Callable[..., Any]) -> Callable[..., Any]:
    return lambda *args: function(*args[:-1])


def _register(spec: Op, definition: OpDefinition) -> None:
    from verifier.local import local_rule, one_sided

    if spec.name in OPS:
        local_rule.cache_clear()  # derivatives of the previous definition
        one_sided.cache_clear()
    OPS[spec.name] = spec
    _DEFINED[spec.name] = definition


def _unregister(name: str, spec: Op | None, definition: OpDefinition | None) -> None:
    """Put back what ``name`` was before a definition that failed."""
    from verifier.local import local_rule, one_sided

    OPS.pop(name, None)
    _DEFINED.pop(name, None)
    if spec is not None:
        OPS[name] = spec
    if definition is not None:
        _DEFINED[name] = definition
    local_rule.cache_clear()
    one_sided.cache_clear()


def definitions() -> tuple[OpDefinition, ...]:
    """The ops defined so far in this process, in the order they were defined."""
    return tuple(_DEFINED.values())


def forget_ops() -> None:
    """Remove every defined op from the table (the built-in ones stay).

    Example:
        >>> _ = define_op("cube", "x**3")
        >>> forget_ops(); "cube" in OPS
        False
    """
    from verifier.local import local_rule, one_sided

    for name in _DEFINED:
        OPS.pop(name, None)
    _DEFINED.clear()
    local_rule.cache_clear()
    one_sided.cache_clear()


def restore(data: Sequence[dict[str, Any]]) -> tuple[OpDefinition, ...]:
    """Define again the ops of :meth:`OpDefinition.to_json` records (a report's, or a
    parent process's): the same formula and declarations give the same op."""
    restored = []
    for record in data:
        declared = record.get("declared", {})
        restored.append(define_op(
            record["name"], record["formula"], method=record.get("method"), arguments=declared.get("arguments"),
            domain=declared.get("domain", ()), kinks=declared.get("kinks", ()), monotone=declared.get("monotone"),
            torch=declared.get("torch"),
            stable=record.get("stable", ""), conventions=record.get("conventions", ""),
            relations=record.get("relations", ()),
        ))
    return tuple(restored)


def engine_specs() -> tuple[tuple[str, int, str], ...]:
    """``(name, arity, method)`` of each defined op: all an engine's sandbox needs
    (it builds graphs by calling methods, and never imports SymPy)."""
    return tuple((d.name, len(d.arguments), d.method) for d in _DEFINED.values())


def register_engine_side(specs: Sequence[tuple[str, int, str]]) -> None:
    """In an engine's sandbox: enter defined ops into the table by name, arity and
    method only (their mathematics stays with the judge, in the parent)."""
    for name, arity, method in specs:
        if name in BUILT_IN:
            continue
        OPS[name] = Op(name, arity, "", method, (method,), engine=_engine_call(method), sympy=_judge_only,
                       torch=_judge_only, mpmath=_judge_only, numpy=_judge_only, value_scale=_judge_only,
                       grad_scales=(_judge_only,) * arity)


def _judge_only(*args: Any) -> Any:
    raise RuntimeError("a defined op's mathematics is the judge's: define_op() in the judging process")
