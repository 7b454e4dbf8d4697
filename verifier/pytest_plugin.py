"""crossgrad's pytest plugin: the property suites against any engine, in pytest.

Installed with crossgrad (``pytest11`` entry point ``crossgrad``); or load it with
``-p verifier.pytest_plugin``. It adds:

* options, grouped under "crossgrad": ``--verifier-engine TARGET`` (default
  ``engine:Value``, or the ``verifier_engine`` ini value), ``--verifier-examples N``
  (overrides ``max_examples`` of the Hypothesis profile), ``--verifier-seed S``
  (default 0: the same examples on every run), ``--verifier-report PATH.html``
  and ``--verifier-json PATH``;
* fixtures ``verifier_engine`` (the engine class) and ``verifier_ops`` (the names
  of the ops it supports);
* the marker ``requires_ops(*names)``: the test is skipped, with the reason
  ``engine lacks exp, log``, unless the engine has them all;
* each op checked alone first: tests marked ``checks_op_alone(name)`` (the suites'
  ``test_op_alone[tanh]``) run before the others, and while one fails, every test
  that uses that op (by its ``requires_ops`` marks, or by the expressions it
  judges) is skipped with ``depends on tanh, which fails alone: see
  test_op_alone[tanh]``, and ``verifier_ops`` leaves the op out: one bug, one
  failure, named after its op. The verdicts are computed once per process (xdist
  workers included), on first need;
* the engine, its ops, the seed and the Hypothesis profile in the report header;
* failures of :class:`verifier.assertions.GradientMismatch` shown as the compact
  table and the ``verifier replay`` command instead of a traceback;
* the session's findings written once (by the xdist controller when there are
  workers) as JSON (``crossgrad-findings.json`` in the rootdir, if anything failed)
  and, on request, as the HTML report of ``verifier check``; findings with the same
  op, kind and cause are one finding (the shortest expression), whichever tests
  found it.

Example::

    pytest --pyargs properties --verifier-engine path/to/my_engine.py:Value
    pytest --pyargs properties --hypothesis-profile=ci -n 2 --verifier-report crossgrad.html
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from verifier.profiles import register_profiles
from verifier.plugin_report import _Compact, _Crash, _merge_duplicates, _mismatches, _notes, _report_dict, _write_json

# Before any pytest_configure: Hypothesis's plugin loads --hypothesis-profile there.
register_profiles()

__all__ = ["DEFAULT_JSON", "engine_of"]

DEFAULT_JSON = "crossgrad-findings.json"
ENGINE_FIXTURES = ("verifier_engine", "verifier_ops")


@dataclass
class _State:
    """The session's crossgrad state (one per process: controller and workers)."""

    target: str
    explicit: bool
    seed: int
    examples: int | None
    report_path: Path | None
    json_path: Path
    json_explicit: bool
    unstable: str = "error"
    engine: type | None = None
    error: str = ""
    supported: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    findings: dict[str, dict] = field(default_factory=dict)
    alone_tests: dict[str, str] = field(default_factory=dict)  # op -> name of the test checking it alone
    failing_alone: dict[str, str] = field(default_factory=dict)  # op -> that test's name (controller)
    skipped_for: Counter = field(default_factory=Counter)  # op -> tests skipped because it fails alone
    compact: list[Any] = field(default_factory=list)  # failure texts whose replay ids may be merged
    stats: Counter = field(default_factory=Counter)
    outcomes: dict[str, str] = field(default_factory=dict)
    workers: set = field(default_factory=set)
    started: float = field(default_factory=time.time)
    written: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


_STATE = pytest.StashKey[_State]()


def _state(config: pytest.Config) -> _State:
    return config.stash[_STATE]


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


# -- options ----------------------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("crossgrad", "crossgrad: gradient property suites (verifier)")
    group.addoption(
        "--verifier-engine", metavar="TARGET", default=None,
        help="engine under test: package.module:Class or path/to/file.py:Class "
             "(default: the verifier_engine ini value, else engine:Value)",
    )
    group.addoption(
        "--verifier-examples", metavar="N", type=int, default=None,
        help="examples per property (default: max_examples of the Hypothesis profile)",
    )
    group.addoption(
        "--verifier-seed", metavar="S", type=int, default=0,
        help="seed of the examples of crossgrad's properties (default: 0)",
    )
    group.addoption(
        "--verifier-report", metavar="PATH.html", default=None,
        help="write the HTML report of the session's findings here",
    )
    group.addoption(
        "--verifier-json", metavar="PATH", default=None,
        help=f"write the session's findings here, for `verifier replay PATH --id ID` "
             f"(default: {DEFAULT_JSON} in the rootdir, written only if something failed)",
    )
    group.addoption(
        "--verifier-unstable", choices=("error", "warning"), default="error",
        help="a numerically unstable formula (right at ordinary inputs, broken at extreme ones) "
             "fails the test (error, the default) or only warns (warning)",
    )
    group.addoption(
        "--verifier-op", metavar="DEFINITION", action="append", default=[],
        help="define an op from its formula and check it too: 'softplus(x) = log(1 + exp(x))', or a library "
             "op's name ('gelu'); repeatable. pyproject.toml's [tool.crossgrad.ops] tables are read as well",
    )
    group.addoption(
        "--verifier-order", choices=("auto", "1", "2"), default="auto",
        help="2: the second-order suite checks the engine's Hessians (its backward must accept create_graph=True); "
             "auto (the default): where the engine can; 1: never",
    )
    group.addoption(
        "--verifier-modes", metavar="fwd,rev", default="auto",
        help="fwd,rev: the forward-mode tests check the engine's tangents (Value(x, tangent=t), .tangent); "
             "auto (the default): where the engine can; rev: never",
    )
    parser.addini("verifier_engine", "engine under test when --verifier-engine is not given", default="")


def _path(text: str, base: Path) -> Path:
    """An option's path, relative to where pytest was invoked (xdist workers too)."""
    return Path(os.path.normpath(base / os.path.expanduser(os.path.expandvars(text))))


@pytest.hookimpl(trylast=True)  # after Hypothesis's plugin has loaded --hypothesis-profile
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requires_ops(*names): skip unless the engine under test (--verifier-engine) "
        "has all these ops, e.g. requires_ops('exp', 'log')",
    )
    config.addinivalue_line(
        "markers",
        "checks_op_alone(name): this test checks op NAME alone; it runs first, and while "
        "it fails the tests that use NAME are skipped (depends on NAME, which fails alone)",
    )
    _define_ops(config)
    option = config.getoption("--verifier-engine")
    ini = (config.getini("verifier_engine") or "").strip()
    examples = config.getoption("--verifier-examples")
    seed = config.getoption("--verifier-seed")
    if examples is not None and examples < 1:
        raise pytest.UsageError(f"--verifier-examples={examples}: expected an int >= 1")
    if seed < 0:
        raise pytest.UsageError(f"--verifier-seed={seed}: expected an int >= 0")
    report = config.getoption("--verifier-report")
    json_option = config.getoption("--verifier-json")
    state = _State(
        target=option or ini or "engine:Value",
        explicit=bool(option or ini),
        seed=seed,
        examples=examples,
        report_path=_path(report, config.invocation_params.dir) if report else None,
        json_path=_path(json_option, config.invocation_params.dir) if json_option else config.rootpath / DEFAULT_JSON,
        json_explicit=bool(json_option),
        unstable=config.getoption("--verifier-unstable"),
    )
    config.stash[_STATE] = state
    config.pluginmanager.register(_Session(config, state), "crossgrad-session")
    if state.explicit:
        # Asked for by name: a bad target stops the session with one line, before
        # any test runs (and before xdist starts workers).
        _load(state)
        if state.error:
            raise pytest.UsageError(f"--verifier-engine {state.target}: {state.error}")
    if examples is not None:
        from hypothesis import settings

        name = f"{settings.get_current_profile_name()}-with-{examples}-examples"
        settings.register_profile(name, max_examples=examples)  # the loaded profile, plus this
        settings.load_profile(name)


def _define_ops(config: pytest.Config) -> None:
    """The ops of ``[tool.crossgrad.ops]`` and ``--verifier-op``, defined before the
    suites are collected (they are parametrized over the op table)."""
    from verifier.op_sources import define_from_pyproject, define_from_text

    try:
        pyproject = config.rootpath / "pyproject.toml"
        if pyproject.is_file():
            define_from_pyproject(pyproject)
        for text in config.getoption("--verifier-op"):
            define_from_text(text)
    except ValueError as error:
        raise pytest.UsageError(f"--verifier-op: {error}") from None


def _load(state: _State) -> type | None:
    """Load the engine once; a failure is kept as a one-line message."""
    if state.engine is None and not state.error:
        from verifier.loader import EngineLoadError, load_engine
        from verifier.run_engine import probe

        try:
            state.engine = load_engine(state.target)
            state.supported, state.missing = probe(state.engine)
        except EngineLoadError as error:
            state.error = str(error)
    return state.engine


def engine_of(config: pytest.Config) -> type:
    """The engine class under test (for plugins and conftests that need it
    outside a fixture); ``pytest.UsageError`` if it cannot be loaded."""
    state = _state(config)
    engine = _load(state)
    if engine is None:
        raise pytest.UsageError(
            f"--verifier-engine {state.target}: {state.error} "
            "(name your engine with --verifier-engine path/to/file.py:Class)"
        )
    return engine


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = _state(config)
    from hypothesis import settings

    profile = settings.get_current_profile_name()
    lines = [
        f"crossgrad: engine {state.target}, seed {state.seed}, "
        f"hypothesis profile {profile!r} (max_examples={settings.default.max_examples})"
    ]
    if not (state.explicit or state.engine is not None or _is_crossgrads_engine(state.target)):
        lines.append(f"crossgrad: {state.target} is loaded when a test needs it")
    elif _load(state) is None:
        lines.append(f"crossgrad: the engine cannot be loaded: {state.error}")
    else:
        lines.append(f"crossgrad: ops {', '.join(state.supported) or 'none'}; missing: {', '.join(state.missing) or 'none'}")
    return lines


def _is_crossgrads_engine(target: str) -> bool:
    """Whether the default target is crossgrad's own engine package (safe to import
    for the header), not some project's own top-level ``engine`` module."""
    import importlib.util

    module = target.partition(":")[0]
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return False
    if spec is None or spec.origin is None:
        return False
    return Path(spec.origin).resolve().parent.parent == Path(__file__).resolve().parent.parent


# -- fixtures and the marker ------------------------------------------------------------

@pytest.fixture(scope="session")
def verifier_engine(pytestconfig: pytest.Config) -> type:
    """The engine class under test (``--verifier-engine``, default ``engine:Value``).

    Example:
        >>> def test_square(verifier_engine):
        ...     x = verifier_engine(3.0)
        ...     (x * x).backward()
        ...     assert x.grad == 6.0
    """
    return engine_of(pytestconfig)


def _asked(pytestconfig: pytest.Config, option: str, engine: type, order: int, forward: bool) -> bool:
    """Whether tests of that order or mode run: skipped when turned off, or (auto)
    when the engine cannot; asked for by name, an engine that cannot fails them."""
    value = pytestconfig.getoption(option)
    if value in ("1", "rev"):
        pytest.skip(f"{option} {value}")
    from verifier.hosts import InProcess
    from verifier.second_order import Checks, cannot

    _, why = cannot(InProcess(engine), Checks(order, forward))
    if why and value == "auto":
        pytest.skip(f"the engine cannot ({why}); {option} auto")
    if why:
        pytest.fail(f"{option} {value}: the engine cannot: {why}", pytrace=False)
    return True


@pytest.fixture(scope="session")
def verifier_second_order(pytestconfig: pytest.Config) -> type:
    """The engine class, for tests of second derivatives (``--verifier-order``):
    they are skipped where it is off, or (auto) where the engine's ``backward``
    does not accept ``create_graph=True``."""
    engine = engine_of(pytestconfig)
    _asked(pytestconfig, "--verifier-order", engine, 2, False)
    return engine


@pytest.fixture(scope="session")
def verifier_forward_mode(pytestconfig: pytest.Config) -> type:
    """The engine class, for tests of forward mode (``--verifier-modes``): skipped
    where it is off, or (auto) where the engine has no ``Value(x, tangent=t)``."""
    engine = engine_of(pytestconfig)
    value = pytestconfig.getoption("--verifier-modes")
    if value != "auto":
        from verifier.second_order import parse_modes

        try:
            forward = parse_modes(value)
        except ValueError as error:
            raise pytest.UsageError(f"--verifier-modes {value}: {error}") from None
        if not forward:
            pytest.skip(f"--verifier-modes {value}")
    _asked(pytestconfig, "--verifier-modes", engine, 1, True)
    return engine


class Ops(tuple):
    """Op names, shown compactly in Hypothesis's falsifying examples."""

    def __repr__(self) -> str:
        return f"ops({', '.join(self)})"


@pytest.fixture(scope="session")
def verifier_ops(pytestconfig: pytest.Config) -> tuple[str, ...]:
    """Names of the ops the engine under test supports, in the op table's order
    (``('add', 'sub', 'mul', ...)``); use them as ``expressions(ops=verifier_ops)``.

    An op that fails its ``checks_op_alone`` test in this session is left out: it
    is reported once, there, and the random expressions exercise the others."""
    engine = engine_of(pytestconfig)
    state = _state(pytestconfig)
    failing = _failing_alone(state, engine, state.alone_tests)
    return Ops(op for op in state.supported if op not in failing)


def _failing_alone(state: _State, engine: type, ops: Any) -> list[str]:
    """Those of ``ops`` checked alone in this session that fail alone (computed
    once per process, on first need: xdist workers each know every verdict)."""
    from verifier.alone import fails_alone

    failing = []
    for op in ops:
        if op not in state.alone_tests or op not in state.supported:
            continue
        try:
            if fails_alone(op, engine=engine) is not None:
                failing.append(op)
        except Exception:  # noqa: BLE001, S112 - not a verdict: the op's own test shows the error, nothing is skipped for it
            continue
    return failing


def _uses_engine(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    return any(f in names for f in ENGINE_FIXTURES) or item.get_closest_marker("requires_ops") is not None


@pytest.hookimpl(trylast=True)  # after deselection (-k, -m) and reordering plugins
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    state = _state(config)
    _alone_first(state, items)
    ours = [item for item in items if _uses_engine(item)]
    if not ours:
        return
    # The default engine is loaded only when a test needs it: the plugin is active
    # in every project where crossgrad is installed.
    engine_of(config)
    for item in ours:
        lacking = _lacking(item, state)
        if lacking:
            # A skip mark (not a skip in setup) reports the test's own location.
            item.add_marker(pytest.mark.skip(reason=f"engine lacks {', '.join(lacking)}"))
    if config.getoption("--hypothesis-seed", None) is not None:
        return  # Hypothesis's own seed option wins
    from hypothesis import is_hypothesis_test, seed

    for item in ours:
        test = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
        if test is not None and is_hypothesis_test(test) and getattr(test, "_hypothesis_internal_use_seed", None) is None:
            seed(state.seed)(test)


def _alone_first(state: _State, items: list[pytest.Item]) -> None:
    """Tests of an op alone run first, and are remembered by op (on every xdist
    worker: each collects the same items)."""
    state.alone_tests = {}
    alone = []
    for item in items:
        mark = item.get_closest_marker("checks_op_alone")
        if mark is not None and mark.args:
            state.alone_tests.setdefault(str(mark.args[0]), item.name)
            alone.append(item)
    if alone:
        chosen = set(map(id, alone))
        items[:] = alone + [item for item in items if id(item) not in chosen]


def _required(item: pytest.Item) -> list[str]:
    wanted: list[str] = []
    for mark in item.iter_markers("requires_ops"):
        wanted += [str(name) for name in mark.args]
    return list(dict.fromkeys(wanted))


def _lacking(item: pytest.Item, state: _State) -> list[str]:
    """The ops named by the item's ``requires_ops`` marks that the engine lacks."""
    wanted = _required(item)
    if not wanted:
        return []
    from verifier.ops import OPS

    unknown = [name for name in wanted if name not in OPS]
    if unknown:
        raise pytest.UsageError(
            f"{item.nodeid}: requires_ops names unknown op {', '.join(map(repr, unknown))}; known: {', '.join(OPS)}"
        )
    return [name for name in dict.fromkeys(wanted) if name not in state.supported]


def pytest_runtest_setup(item: pytest.Item) -> None:
    state = _state(item.config)
    uses_engine = _uses_engine(item)
    if "verifier.assertions" in sys.modules or uses_engine:
        from verifier import assertions
        from verifier.alone import set_alone_tests
        from verifier.assertions import set_replay_file

        assertions.UNSTABLE_SEVERITY = state.unstable
        set_replay_file(_shown(state.json_path, item.config))
        set_alone_tests(state.alone_tests, state.engine)
    if not uses_engine or not state.alone_tests:
        return
    engine = _load(state)
    if engine is None:
        return
    set_alone_tests(state.alone_tests, engine)  # loaded only now, if this is the first test to need it
    # Every verdict now, outside the test's own timing: an assertion inside a
    # Hypothesis example asks for them too, and must not pay for them against its deadline.
    failing_here = set(_failing_alone(state, engine, state.alone_tests))
    if item.get_closest_marker("checks_op_alone") is not None:
        return
    failing = [op for op in _required(item) if op in failing_here]
    if failing:
        names, tests = " and ".join(failing), ", ".join(state.alone_tests[op] for op in failing)
        reason = f"depends on {names}, which fail{'s' if len(failing) == 1 else ''} alone: see {tests}"
        try:  # reported at the test's own location, as a skip mark is
            raise pytest.skip.Exception(reason, _use_item_location=True)
        except TypeError:  # a pytest without that keyword
            pytest.skip(reason)


def _shown(path: Path, config: pytest.Config) -> str:
    """``path`` relative to where pytest was invoked, when it is below it."""
    try:
        return str(path.relative_to(config.invocation_params.dir))
    except ValueError:
        return str(path)


# -- failures: compact table, findings shipped to the controller -------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    if call.when == "call" and "verifier.assertions" in sys.modules:
        stats = sys.modules["verifier.assertions"].take_stats()
        if stats:
            report.crossgrad_stats = stats
    checks = item.get_closest_marker("checks_op_alone")
    if checks is not None and checks.args and report.failed:
        report.crossgrad_alone = [str(checks.args[0]), item.name]  # for the controller's summary
    if not report.failed or call.excinfo is None:
        return report
    found, alone = _mismatches(call.excinfo.value)
    if not found:
        return report
    findings = []
    for error in found:
        if error.finding is not None:
            data = error.finding.to_dict()
            data.setdefault("extra", {})["test"] = item.nodeid
            findings.append(json.dumps(data))
    if findings:
        report.crossgrad_findings = findings
    if alone and item.config.getoption("tbstyle", "auto") not in ("long", "native"):
        path, lineno, _ = item.location
        blocks = []
        for error in found:
            blocks.append(f"{type(error).__name__}: {error}")
        blocks += _notes(call.excinfo.value) + [n for e in found for n in _notes(e) if e is not call.excinfo.value]
        first = str(found[0]).splitlines()[0] if str(found[0]) else type(found[0]).__name__
        crash = _Crash(path, (lineno or 0) + 1, f"{type(found[0]).__name__}: {first}")
        report.longrepr = _Compact("\n".join(blocks), crash)
        report.crossgrad_crash = [crash.path, crash.lineno, crash.message]
    return report


class _Session:
    """Per-session hooks (registered for each config, so that nested pytester
    sessions keep their own state): collects what the tests found and writes it."""

    def __init__(self, config: pytest.Config, state: _State) -> None:
        self.config, self.state = config, state

    @pytest.hookimpl(tryfirst=True)  # before the terminal reporter keeps the report
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if _is_worker(self.config):
            return  # the controller collects what workers send
        state = self.state
        crash = getattr(report, "crossgrad_crash", None)
        if crash and isinstance(report.longrepr, str):  # rebuilt on the xdist controller
            report.longrepr = _Compact(report.longrepr, _Crash(*crash))
        gateway = getattr(getattr(report, "node", None), "gateway", None)
        if gateway is not None:
            state.workers.add(gateway.id)
        for text in getattr(report, "crossgrad_findings", None) or ():
            data = json.loads(text)
            state.findings.setdefault(data["id"], data)
        if getattr(report, "crossgrad_findings", None) and isinstance(report.longrepr, _Compact):
            state.compact.append(report.longrepr)
        alone = getattr(report, "crossgrad_alone", None)
        if alone:
            state.failing_alone[alone[0]] = alone[1]
        if report.skipped and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
            reason = str(report.longrepr[2]).removeprefix("Skipped: ")
            if reason.startswith("depends on ") and ", which fail" in reason:
                state.skipped_for.update(reason[len("depends on "):].split(",", 1)[0].split(" and "))
        state.stats.update(getattr(report, "crossgrad_stats", None) or {})
        if report.when == "call" or report.outcome != "passed":
            outcome = "xfailed" if hasattr(report, "wasxfail") and report.skipped else report.outcome
            if report.when != "call" and report.outcome == "failed":
                outcome = "error"
            state.outcomes[report.nodeid] = outcome

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if _is_worker(self.config):
            return
        state = self.state
        _merge_duplicates(state)
        if not (state.findings or state.json_explicit or state.report_path):
            return
        data = _report_dict(self.config, session, state)
        json_written: Path | None = None
        if state.findings or state.json_explicit:
            try:
                _write_json(data, state.json_path)
                json_written = state.json_path
                state.written.append(f"findings: {_shown(state.json_path, self.config)}")
            except (OSError, ValueError, TypeError) as error:
                state.problems.append(f"could not write {_shown(state.json_path, self.config)}: {type(error).__name__}: {error}")
        if state.report_path is not None:
            try:
                from reports import write_html
            except ImportError as error:
                state.problems.append(f"--verifier-report needs the reports package ({error})")
            else:
                try:
                    # The page quotes this path in its `verifier replay` lines.
                    write_html(data, state.report_path, json_path=_shown(json_written, self.config) if json_written else None)
                    state.written.append(f"HTML report: {_shown(state.report_path, self.config)}")
                except Exception as error:  # noqa: BLE001 - the session's result stands; say why there is no report
                    state.problems.append(f"could not write {_shown(state.report_path, self.config)}: {type(error).__name__}: {error}")

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        state = self.state
        if _is_worker(config) or not (state.written or state.problems or state.failing_alone):
            return
        terminalreporter.section("crossgrad")
        if state.findings:
            n = len(state.findings)
            seen = sum(1 + f.get("extra", {}).get("duplicates", 0) for f in state.findings.values())
            more = f" (found {seen} times)" if seen > n else ""
            terminalreporter.line(f"{n} finding{'s' if n != 1 else ''} on engine {state.target}{more}")
        for op, test in sorted(state.failing_alone.items()):
            skipped = state.skipped_for.get(op, 0)
            terminalreporter.line(f"{op} fails alone ({test}); {skipped} test{'s' if skipped != 1 else ''} that use it skipped")
        for line in state.written:
            terminalreporter.line(line)
        if state.findings:
            first = next(iter(state.findings))
            terminalreporter.line(f"replay one with: verifier replay {_shown(state.json_path, self.config)} --id {first}")
        for line in state.problems:
            terminalreporter.line(line, red=True)
