"""The edge corpus: mutants of ``base.py`` that are right at ordinary points and
wrong only at the edges of float64.

Each is one plausible mistake of a real engine author: a clamp, a guard, a
"saturation shortcut", a flush of subnormals, a textbook formula that overflows,
an argument reduction with a short pi, an optimisation that skips negligible
gradients, a forgotten ``* out.grad``, a racy cache, a number type of the engine's
own. They are :class:`EdgeMutant` (a :class:`corpus.Mutant` that also names its
edge) and are written like the main corpus, as text patches of ``base.py``.

Where the patch would need an absolute path (the hostile mutants' marker file), the
engine computes it from its own ``__file__``: ``marker_path(engine_path)`` is where
a hostile object would write if the verifier's process ever unpickled it.

Example::

    from tests.engines import corpus, edge
    m = edge.EDGE_BY_NAME["exp_grad_clamped_argument"]
    path = corpus.write_engine(tmp_path, m.name, m.patches)
    # verifier check --engine {path}:Value  -> a "gradient" finding blamed on "exp"
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.engines.corpus import Mutant

__all__ = ["EdgeMutant", "EDGE_MUTANTS", "EDGE_BY_NAME", "EDGES", "NONDETERMINISTIC", "marker_path"]

# The edges the issue asks for (each mutant names one).
EDGES = ("underflow", "overflow", "zero", "tiny denominator", "huge denominator", "large argument",
         "subnormal input", "tiny gradient", "upstream gradient", "nondeterministic", "hostile data")

NONDETERMINISTIC = "nondeterministic"  # a finding kind of its own (the same case answered two ways)
DBL_MIN = "2.2250738585072014e-308"    # the smallest normal float64, as the engines spell it


@dataclass(frozen=True)
class EdgeMutant(Mutant):
    """A :class:`corpus.Mutant` whose bug lives at one edge.

    Attributes:
        edge: which edge (one of :data:`EDGES`).
        hostile: the engine hands back objects built to harm whoever unpickles them
            (a marker file next to the engine, see :func:`marker_path`) or that
            cannot be unpickled outside the engine's process: the verifier's process
            must stay untouched and the campaign must complete.
        deterministic: False when the same call may give two answers.
        ops: where the edge needs the op fed directly by an extreme leaf (exp of
            709.5, log of a subnormal), the op set a user checking that op would
            narrow the campaign to (``--ops exp,add``); empty: all ops (the defaults).
    """

    edge: str = ""
    hostile: bool = False
    deterministic: bool = True
    ops: tuple[str, ...] = ()


def marker_path(engine_path: Path | str) -> Path:
    """Where a hostile mutant's objects write when they are unpickled."""
    path = Path(engine_path)
    return path.with_name(path.stem + ".pwned")


def _e(name, description, edge, patches, kinds, blame, witness, point, *, severity="error",
       hostile=False, deterministic=True, ops=()) -> EdgeMutant:
    assert edge in EDGES, edge
    return EdgeMutant(name, description, tuple(patches), frozenset(kinds), blame, witness, tuple(point),
                      severity, edge, hostile, deterministic, tuple(ops))


G, V, E, I, T = "gradient", "value", "exception", "invalid", "timeout"

_IMPORT = "import math\n"
_SQRT_RAISES = '            raise ValueError(f"sqrt of negative number {x}")\n'
_SQRT_COMPLEX = """\
            out = Value(0.0, (self,), 'sqrt')
            out.data = _Complex(0.0, math.sqrt(-x))  # sqrt(-4) = 2j, like cmath
            return out
"""
_MUL_BACKWARD = "            self.grad += other.data * out.grad\n            other.grad += self.data * out.grad\n"

# A complex type of the engine's own whose pickle, once loaded, writes a file: if the
# verifier's process ever unpickles what the engine built, the marker appears.
_HOSTILE_COMPLEX = '''import math
import pathlib

_MARKER = pathlib.Path(__file__).with_name(pathlib.Path(__file__).stem + ".pwned")


class _Complex(complex):
    """The engine's own complex numbers."""

    def __reduce__(self):
        return (pathlib.Path.write_text, (_MARKER, "unpickled in the verifier's process"))

    def __repr__(self):
        return "<script>alert('complex')</script>"
'''
# The same type without the payload: it pickles by reference to a class that only the
# engine's process can import.
_PLAIN_COMPLEX = '''import math


class _Complex(complex):
    """The engine's own complex numbers."""
'''
# Gradients past 1e300 are tagged for clipping with a float type of the engine's own
# (sticky under +), whose pickle writes the marker.
_HOSTILE_FLOAT = '''import math
import pathlib

_MARKER = pathlib.Path(__file__).with_name(pathlib.Path(__file__).stem + ".pwned")


class _Clipped(float):
    """A gradient that was clipped (the optimiser wants to know)."""

    def __add__(self, other):
        return _Clipped(float(self) + float(other))

    __radd__ = __add__

    def __reduce__(self):
        return (pathlib.Path.write_text, (_MARKER, "unpickled in the verifier's process"))

    def __repr__(self):
        return "<img src=x onerror=alert('grad')>" * 100
'''
_STALE_CACHE = """import math
import random

_last = [0.0]  # the last tanh computed: a cache shared between calls, and racy
"""


def _tanh_of_product(x, y):
    return (x * y).tanh()


def _exp_of_product(x, y):
    return (x * y).exp()


def _sin_of_product(x, y):
    return (x * y).sin()


EDGE_MUTANTS: tuple[EdgeMutant, ...] = (
    # -- overflow and underflow of exp ---------------------------------------------
    _e("exp_grad_clamped_argument",
       "exp's backward clamps its argument to [-700, 700] to avoid overflow: exp(700) where exp(705) is due",
       "overflow",
       [("self.grad += out.data * out.grad",
         "self.grad += math.exp(min(max(self.data, -700.0), 700.0)) * out.grad  # clamped: cannot overflow")],
       {G}, "exp", lambda x: x.exp(), (705.0,)),
    _e("exp_overflow_guard_too_early",
       "exp returns inf from x > 709 on, a rounded overflow threshold: exp(709.5) = 1.35e308 is finite",
       "overflow",
       [("Value(math.exp(self.data), (self,), 'exp')",
         "Value(math.exp(self.data) if self.data < 709 else math.inf, (self,), 'exp')")],
       {V, G}, "exp", lambda x: x.exp(), (709.5,), ops=("exp", "add")),
    # -- saturating functions at large arguments ------------------------------------
    _e("sigmoid_grad_saturation_shortcut",
       "sigmoid's backward returns 0 for |x| > 40 ('saturated'): sigmoid'(-45) = 2.9e-20 is representable",
       "underflow",
       [("s * (1 - s) * out.grad", "(0.0 if abs(x) > 40 else s * (1 - s)) * out.grad  # saturated")],
       {G}, "sigmoid", lambda x: x.sigmoid(), (-45.0,)),
    _e("sigmoid_grad_textbook_overflow",
       "sigmoid' as exp(-x)/(1+exp(-x))**2: OverflowError below x ~ -355 where the slope is a tiny number",
       "overflow",
       [("s * (1 - s) * out.grad", "math.exp(-x) / (1 + math.exp(-x)) ** 2 * out.grad")],
       {E, G}, "sigmoid", lambda x: x.sigmoid(), (-400.0,)),
    _e("tanh_saturation_drops_sign",
       "tanh returns 1.0 for |x| > 20 (a saturation shortcut that forgets the sign): tanh(-25) = -1",
       "large argument",
       [("t = math.tanh(self.data)", "t = 1.0 if abs(self.data) > 20 else math.tanh(self.data)  # saturated")],
       {V}, "tanh", lambda x: x.tanh(), (-25.0,)),
    _e("tanh_grad_sech_squared_overflow",
       "tanh' as 1/cosh(x)**2: OverflowError past |x| ~ 355 where the slope underflows to 0",
       "overflow",
       [("(1 - t**2) * out.grad", "out.grad / math.cosh(self.data) ** 2  # sech^2")],
       {E}, "tanh", lambda x: x.tanh(), (400.0,)),
    _e("sin_reduces_large_argument_with_short_pi",
       "sin reduces |x| > 100 modulo 2*3.14159265 first 'for accuracy': sin(1000) off by 1e-6",
       "large argument",
       [("        out = Value(math.sin(x), (self,), 'sin')\n",
         "        if abs(x) > 100:  # reduce big arguments first\n"
         "            x = math.fmod(x, 2 * 3.14159265)\n"
         "        out = Value(math.sin(x), (self,), 'sin')\n")],
       {V, G}, "sin", lambda x: x.sin(), (1000.0,)),
    # -- tiny and huge denominators --------------------------------------------------
    _e("log_grad_clamped_denominator",
       "log's backward divides by max(x, 1e-12) to avoid blowing up: 1e12 where 1/x = 1e20 is due",
       "tiny denominator",
       [("self.grad += out.grad / x", "self.grad += out.grad / max(x, 1e-12)  # no blow-up near 0")],
       {G}, "log", lambda x: x.log(), (1e-20,)),
    _e("div_clamps_tiny_denominator",
       "div clamps |b| < 1e-150 to 1e-150 to keep a/b from blowing up: 1/1e-200 = 1e200 comes out 1e150",
       "tiny denominator",
       [("        out = Value(self.data / other.data, (self, other), '/')\n",
         "        b = other.data\n"
         "        if 0 < abs(b) < 1e-150:  # keep tiny denominators from blowing up\n"
         "            b = math.copysign(1e-150, b)\n"
         "        out = Value(self.data / b, (self, other), '/')\n")],
       {V, G}, "div", lambda x, y: x / y, (1.0, 1e-200)),
    _e("div_reciprocal_flushed_for_huge_denominator",
       "div computes a * (1/b) with 1/b taken as 0 for |b| > 1e150 ('negligible'): 1/1e200 = 1e-200 comes out 0",
       "huge denominator",
       [("        out = Value(self.data / other.data, (self, other), '/')\n",
         "        inv = 0.0 if abs(other.data) > 1e150 else 1 / other.data  # 1/b is negligible\n"
         "        out = Value(self.data * inv, (self, other), '/')\n")],
       {V, G}, "div", lambda x, y: x / y, (1.0, 1e200)),
    _e("sqrt_grad_as_s_over_2x",
       "sqrt' written as sqrt(x) / (2x): 2x overflows for x > 9e307, so the slope comes out 0",
       "overflow",
       [("0.5 / s * out.grad", "s / (2 * x) * out.grad  # d sqrt(x) = sqrt(x) / (2x)")],
       {G}, "sqrt", lambda x: x.sqrt(), (1.5e308,), ops=("sqrt", "add")),
    # -- the upstream gradient -------------------------------------------------------
    _e("mul_grad_drops_upstream",
       "mul's backward forgets `* out.grad`: right only where mul is the output",
       "upstream gradient",
       [(_MUL_BACKWARD, "            self.grad += other.data\n            other.grad += self.data\n")],
       {G}, "mul", _sin_of_product, (0.5, 2.0)),
    _e("mul_skips_negligible_upstream_gradient",
       "mul's backward returns early when |out.grad| < 1e-100 ('negligible'): tiny gradients are lost",
       "tiny gradient",
       [(_MUL_BACKWARD, "            if abs(out.grad) < 1e-100:\n"
                        "                return  # a negligible gradient: skip the work\n" + _MUL_BACKWARD)],
       {G}, "mul", _exp_of_product, (-300.0, 1.0), ops=("mul", "exp")),
    # -- subnormal inputs --------------------------------------------------------------
    _e("pow_flushes_subnormal_base",
       "pow flushes a subnormal base to 0 (denormals-are-zero): (1e-310)**0.5 = 1e-155 comes out 0",
       "subnormal input",
       [("        if x < 0 and not float(k).is_integer():\n",
         f"        if abs(x) < {DBL_MIN}:\n"
         "            x = 0.0  # denormals are zero, as on a GPU\n"
         "        if x < 0 and not float(k).is_integer():\n")],
       {V, G, E}, "pow", lambda x: x ** 0.5, (1e-310,), ops=("pow", "add")),
    _e("relu_flushes_subnormal_input",
       "relu treats a subnormal input as 0 (x >= DBL_MIN): relu'(1e-310) = 1 comes out 0",
       "subnormal input",
       [("Value(self.data if self.data > 0 else 0.0, (self,), 'relu')",
         f"Value(self.data if self.data >= {DBL_MIN} else 0.0, (self,), 'relu')  # denormals are zero")],
       {G, V}, "relu", lambda x: x.relu(), (1e-310,), ops=("relu", "add")),
    _e("sqrt_newton_stops_early_on_subnormals",
       "sqrt by Newton's method stopping at |s*s - x| <= 5e-16*x: too coarse for deep subnormals (sqrt(1e-320) off by 2e-5), never met at DBL_MAX",
       "subnormal input",
       [("        s = math.sqrt(x)\n",
         "        s = max(x, 1.0) if x > 0 else 0.0  # Newton's method from above\n"
         "        while abs(s * s - x) > 5e-16 * x:  # about 2 ulps\n"
         "            s = (s + x / s) / 2\n")],
       {V, G, T}, "sqrt", lambda x: x.sqrt(), (1e-320,)),
    _e("sqrt_scaling_loop_prints_forever_at_zero",
       "sqrt scales x into [1, 4) by powers of 4 with a debug print per step: at x = 0 it prints forever",
       "zero",
       [("        s = math.sqrt(x)\n",
         "        m, k = x, 0\n"
         "        while m < 1:  # scale into [1, 4): sqrt(x) = 2**k * sqrt(m)\n"
         "            print(f'sqrt: scaling {m!r} up')  # debugging, left in\n"
         "            m, k = m * 4, k - 1\n"
         "        while m >= 4:\n"
         "            m, k = m / 4, k + 1\n"
         "        s = math.sqrt(m) * 2.0 ** k\n")],
       {T}, "sqrt", lambda x: x.sqrt(), (0.0,)),
    # -- nondeterminism ----------------------------------------------------------------
    _e("tanh_racy_cache",
       "tanh returns the previous call's value one time in ten (a racy cache)",
       "nondeterministic",
       [(_IMPORT, _STALE_CACHE),
        ("        t = math.tanh(self.data)\n",
         "        t = math.tanh(self.data)\n"
         "        if random.random() < 0.1:  # the cache raced: the previous call's answer\n"
         "            t = _last[0]\n"
         "        _last[0] = t\n")],
       {V, G, NONDETERMINISTIC}, "tanh", _tanh_of_product, (0.5, 1.5), deterministic=False),
    # -- hostile data ---------------------------------------------------------------------
    _e("sqrt_negative_hostile_complex",
       "sqrt of a negative returns a complex .data of the engine's own type, whose pickle writes a file",
       "hostile data",
       [(_IMPORT, _HOSTILE_COMPLEX), (_SQRT_RAISES, _SQRT_COMPLEX)],
       {V, I}, "sqrt", lambda x: x.sqrt(), (-4.0,), severity="warning", hostile=True),
    _e("sqrt_negative_complex_subclass",
       "sqrt of a negative returns a complex .data of the engine's own type (unpicklable elsewhere)",
       "hostile data",
       [(_IMPORT, _PLAIN_COMPLEX), (_SQRT_RAISES, _SQRT_COMPLEX)],
       {V, I}, "sqrt", lambda x: x.sqrt(), (-4.0,), severity="warning", hostile=True),
    _e("log_grad_clipped_hostile_float",
       "log's backward clips |grad| > 1e300 to 1e300 as a float type of its own whose pickle writes a file",
       "tiny denominator",
       [(_IMPORT, _HOSTILE_FLOAT),
        ("self.grad += out.grad / x",
         "g = out.grad / x\n"
         "            if abs(g) > 1e300:  # tag huge gradients for the optimiser, clipped\n"
         "                g = _Clipped(math.copysign(1e300, g))\n"
         "            self.grad += g")],
       {G}, "log", lambda x: x.log(), (1e-305,), hostile=True, ops=("log", "add")),
)

EDGE_BY_NAME: dict[str, EdgeMutant] = {m.name: m for m in EDGE_MUTANTS}
