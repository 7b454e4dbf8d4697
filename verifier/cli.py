"""The ``verifier`` command (also ``python -m verifier``).

Exit codes: 0 no error finding; 1 error findings (or, for ``replay``, a finding that
still fails); 2 a usage or configuration error, reported in one line; 3 nothing was
judged (e.g. the time budget ran out before the first example: a run that checked
nothing is never green; the report says why); 130 the run was interrupted (the
partial report is still written).

Progress goes to stderr, while checking and then while shrinking: a bar on a
terminal; elsewhere (a CI log) a plain line every tenth of a phase or every 30 s.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import click

from verifier import __version__
from verifier.display import plural

EXAMPLES = """
\b
Examples:
  verifier check --report report.html
  verifier check --engine my_value.py:Value --examples 1000 --report report.html
  verifier check --engine micrograd.engine:Value --ops add,mul,pow,relu
  verifier check --ops +gelu,+maximum --op 'softplus(x) = log(1 + exp(x))'
  verifier compare "tanh(x0*x1) - 3/x1" --at x0=0.5,x1=2
  verifier replay report.json --id F1a2b3c4d
  verifier check --engine torch:float32 --report torch32.html
  verifier survey --examples 3000 --seeds 1,2,3
"""


NOTHING_JUDGED = 3  # exit code of a check that judged no example

# A worker process takes ~5-15 s to start (torch, SymPy, its own engine sandbox) and
# one core checks ~250-600 examples/s (measured: 300 examples took 5 s serially and
# 16 s on 2 workers; 1,000 took 8 s and 23 s), so a worker pays for itself only with
# thousands of examples: `--workers N` starts at most examples // 4,000 of them
# (with 2 workers, serial below 8,000 examples).
EXAMPLES_PER_WORKER = 4000

# Without a terminal (a CI log), a plain progress line on stderr every tenth of a
# phase or every PLAIN_EVERY seconds, whichever comes first.
PLAIN_EVERY = 30.0


class UsageFailure(Exception):
    """A one-line usage or configuration error (exit 2)."""


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


@click.group(epilog=EXAMPLES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="crossgrad verifier")
def cli() -> None:
    """Cross-check an autograd engine's gradients against exact symbolic
    derivatives (SymPy at 50 digits), PyTorch and central differences."""


# -- check --------------------------------------------------------------------------------

@cli.command(epilog=EXAMPLES)
@click.option("--engine", "target", default="engine:Value", show_default=True, metavar="TARGET",
              help="The engine class: package.module:Class or path/to/file.py:Class, or a framework adapter: "
                   "torch, torch:float32, torch:bfloat16, jax, jax:float32, autograd, mygrad, tinygrad.")
@click.option("--examples", type=click.IntRange(min=1), default=300, show_default=True, help="Random expressions to try.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Same seed, same findings.")
@click.option("--ops", default=None, metavar="LIST", help="Comma-separated ops to exercise (default: all the engine has).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the findings as JSON (default: next to --report).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the HTML report here.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="Seconds one case may take before it counts as a hang.")
@click.option("--time-budget", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop exploring after this many seconds; what was found is shrunk for at most half as "
                   "long again, and reported. A run that judged nothing exits 3.")
@click.option("--workers", default="auto", show_default=True, metavar="N|auto", callback=lambda c, p, v: _workers_value(v),
              help=f"Processes to run shards in, at most one per {EXAMPLES_PER_WORKER:,} examples (a worker takes "
                   "seconds to start: smaller campaigns run serially, which is faster). auto: one per CPU within that "
                   f"limit, so serially below {2 * EXAMPLES_PER_WORKER:,} examples, on one CPU, or with a --time-budget under 60 s.")
@click.option("--dask", "dask_address", default=None, metavar="ADDRESS",
              help="Run the shards as tasks on a Dask cluster (its scheduler, e.g. tcp://scheduler:8786) instead of "
                   "local processes; the engine must be importable on its workers. Needs pip install 'crossgrad[dask]'.")
@click.option("--unstable", type=click.Choice(["error", "warning"]), default="error", show_default=True,
              help="Severity of a numerically unstable formula (right at ordinary inputs, broken at extreme ones).")
@click.option("--dtype", type=click.Choice(["float64", "float64-ftz", "float32", "float32-ftz", "float16", "bfloat16"]), default=None,
              help="The number format the engine computes in (default: what the engine says, else float64): it is "
                   "judged by what that format allows, at inputs that format holds.")
@click.option("--op", "op_texts", multiple=True, metavar="DEFINITION",
              help="Define an op from its formula and check it: 'softplus(x) = log(1 + exp(x))' (repeatable).")
@click.option("--custom", "customs", multiple=True, metavar="OP=TARGET",
              help="With a framework --engine (torch, jax, ...): op OP is computed by TARGET, a custom gradient "
                   "(my_ops.py:MySoftplus, a torch.autograd.Function or a jax.custom_vjp function) checked against "
                   "OP's formula (--op) in random graphs of the framework's ops. Repeatable.")
@click.option("--ops-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Define the ops of a TOML file's [ops.NAME] tables (formula, method, domain, ...) and check them.")
@click.option("--order", type=click.IntRange(1, 2), default=1, show_default=True,
              help="2: also check every expression's Hessian against the exact one (the engine's backward must "
                   "accept create_graph=True; each .grad is then a Value that is back-propagated again).")
@click.option("--modes", default="rev", show_default=True, metavar="fwd,rev",
              help="Derivative modes to check: 'fwd,rev' adds forward mode (Value(x, tangent=t) and .tangent).")
def check(target: str, examples: int, seed: int, ops: str | None, json_path: Path | None, report_path: Path | None,
          timeout: float, time_budget: float | None, workers: int, unstable: str, dtype: str | None,
          op_texts: tuple[str, ...], customs: tuple[str, ...], ops_file: Path | None, order: int = 1, modes: str = "rev",
          dask_address: str | None = None) -> None:
    """Run a campaign against an engine and report every discrepancy."""
    from verifier.campaign import check_engine
    from verifier.ops import op_names
    from verifier.second_order import parse_modes

    defined = _define(op_texts, ops_file)
    try:
        op_names(ops)
    except ValueError as error:
        raise UsageFailure(f"--ops: {error}") from None
    try:
        parse_modes(modes)
    except ValueError as error:
        raise UsageFailure(f"--modes: {error}") from None
    # The ops as written (an op named is one asked for; "all" is all the engine has),
    # with the defined ones added.
    chosen = ",".join([ops] * bool(ops) + [f"+{name}" for name in defined]) or None
    if report_path is not None and json_path is None:
        json_path = report_path.with_suffix(".json")
    for path in (json_path, report_path):
        if path is not None and not path.parent.exists():
            raise UsageFailure(f"cannot write {path}: folder {path.parent} does not exist")
    used = _auto_workers(examples, time_budget, EXAMPLES_PER_WORKER) if workers == "auto" else _workers(workers, examples)
    if dask_address is not None:
        used = _dask_usable(workers)
    engine: Any = target
    isolate = None
    if customs:
        engine, isolate, used = _custom_engine(target, customs), False, 1
    console = _console(stderr=True)
    with _Progress(console) as update:
        try:
            result = check_engine(engine, examples=examples, seed=seed, ops=chosen, timeout=timeout, isolate=isolate,
                                  time_budget=time_budget, workers=used, progress=update, unstable=unstable, dtype=dtype,
                                  cluster=dask_address, order=order, modes=modes)
        except ValueError as error:  # includes EngineLoadError
            raise UsageFailure(str(error)) from None
    report = result.to_dict()
    if json_path is not None:
        from reports import write_json

        write_json(report, json_path)
    if report_path is not None:
        from reports import write_html

        write_html(report, report_path, json_path=str(json_path) if json_path else None)
    _summary(_console(), result, json_path, report_path)
    if workers != "auto" and dask_address is None and used < workers:
        how = "ran serially" if used == 1 else f"used {used} processes"
        _console().print(f"(--workers {workers}: {how}, one per {EXAMPLES_PER_WORKER:,} examples at most: "
                         "a worker takes seconds to start; see --help)")
    if result.stopped == "interrupted":
        raise SystemExit(130)
    if result.findings:
        raise SystemExit(1)
    raise SystemExit(NOTHING_JUDGED if result.unjudged else 0)


def _custom_engine(target: str, customs: tuple[str, ...]) -> type:
    """The framework adapter ``target`` with each ``OP=TARGET`` implementation."""
    from verifier.adapters import ADAPTERS
    from verifier.custom import engine_with
    from verifier.loader import EngineLoadError, load_object
    from verifier.ops import OPS

    if target not in ADAPTERS:
        raise UsageFailure(f"--custom needs a framework --engine ({', '.join(ADAPTERS)}), got {target!r}")
    implementations = {}
    for text in customs:
        op, _, where = text.partition("=")
        op = op.strip()
        if not op or not where.strip():
            raise UsageFailure(f"--custom {text!r}: expected OP=file.py:Function, e.g. softplus=my_ops.py:MySoftplus")
        if op not in OPS:
            raise UsageFailure(f"--custom {text!r}: op {op!r} is not defined; give its formula with --op '{op}(x) = ...'")
        try:
            implementations[op] = load_object(where.strip())
        except EngineLoadError as error:
            raise UsageFailure(f"--custom {text!r}: {error}") from None
    try:
        return engine_with(target, implementations)
    except (ValueError, TypeError) as error:
        raise UsageFailure(f"--custom: {error}") from None


def _define(texts: tuple[str, ...], ops_file: Path | None) -> tuple[str, ...]:
    """Define the ops of --op and --ops-file; their names, to be checked."""
    from verifier.op_sources import define_from_file, define_from_text

    names = []
    for text in texts:
        try:
            names.append(define_from_text(text).name)
        except ValueError as error:
            raise UsageFailure(f"--op: {error}") from None
    if ops_file is not None:
        try:
            names.extend(d.name for d in define_from_file(ops_file))
        except ValueError as error:
            raise UsageFailure(f"--ops-file: {error}") from None
    return tuple(names)


def _workers_value(value: Any) -> Any:
    """``--workers``: "auto" or a number >= 1."""
    if str(value).strip().lower() == "auto":
        return "auto"
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise click.BadParameter(f"{value!r}: expected a number >= 1 or auto") from None
    if number < 1:
        raise click.BadParameter(f"{value!r}: expected a number >= 1 or auto")
    return number


def _auto_workers(examples: int, time_budget: float | None, per_worker: int) -> int:
    from verifier.executors import auto_workers

    return auto_workers(examples, time_budget, per_worker)


def _dask_usable(workers: Any) -> int:
    """--dask: dask.distributed is installed and --workers is not asked for too."""
    from verifier.cluster import ClusterError, _distributed

    if workers != "auto":
        raise UsageFailure(f"--workers {workers} and --dask: choose one (with --dask, the cluster's workers run the shards)")
    try:
        _distributed()
    except ClusterError as error:
        raise UsageFailure(f"--dask: {error}") from None
    return 1


def _workers(asked: int, examples: int) -> int:
    """The workers worth starting: at most one per EXAMPLES_PER_WORKER examples.

    Example:
        >>> _workers(2, 300), _workers(2, 8000), _workers(4, 12000), _workers(1, 10**6)
        (1, 2, 3, 1)
    """
    return max(1, min(asked, examples // EXAMPLES_PER_WORKER))


class _Progress:
    """Progress on stderr while checking, then while shrinking: a bar on a terminal;
    elsewhere (a CI log) a plain line every tenth of a phase or every
    ``PLAIN_EVERY`` seconds."""

    def __init__(self, console: Any, clock: Any = None, out: Any = None) -> None:
        self.console = console
        self.clock = clock or time.monotonic
        self.out = out
        self.bar: Any = None
        self.task: Any = None
        self.phase = ""
        self.started = self.clock()
        self.printed = (self.started, -1)  # (when, tenth of the phase) of the last plain line

    def __enter__(self) -> Any:
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                console=self.console, transient=True)
            self.bar.__enter__()
        return self.update

    def update(self, done: int, total: int, phase: str = "checking") -> None:
        if self.bar is not None:
            if phase != self.phase:
                if self.task is not None:
                    self.bar.remove_task(self.task)
                self.task = self.bar.add_task(phase, total=total)
            self.bar.update(self.task, completed=done, total=total)
        else:
            self._line(done, total, phase)
        self.phase = phase

    def _line(self, done: int, total: int, phase: str) -> None:
        now = self.clock()
        tenth = 10 * done // max(total, 1)
        if phase != self.phase:  # a new phase: shrinking's start is shown, checking's 0 % is not
            self.printed = (self.printed[0], 0 if phase == "checking" else -1)
        if tenth <= self.printed[1] and now - self.printed[0] < PLAIN_EVERY:
            return
        self.printed = (now, tenth)
        what = plural(total, "example" if phase == "checking" else "finding").partition(" ")[2]
        percent = f" ({100 * done // max(total, 1)}%)" if phase == "checking" else ""
        print(f"verifier: {phase} {done}/{total} {what}{percent}, {now - self.started:.0f} s",
              file=self.out or sys.stderr, flush=True)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _summary(console: Any, result: Any, json_path: Path | None, report_path: Path | None) -> None:
    from rich.table import Table

    from verifier.judge import format_point

    console.print(f"[bold]crossgrad[/bold] checked [bold]{_plain(result.engine)}[/bold]: "
                  f"{plural(result.examples, 'example')} (seed {result.seed}) in {result.duration:.1f} s"
                  + ("" if result.stopped == "completed" else f" — stopped early ({result.stopped})"))
    console.print(f"ops tested: {', '.join(result.ops)}")
    if result.missing:
        console.print(f"ops missing (not generated): {', '.join(result.missing)}")
    if result.quarantined:
        console.print(f"ops quarantined (crash or hang alone): {', '.join(result.quarantined)}")
    if result.conventions:
        console.print(f"conventions: {', '.join(result.conventions)}")
    rows = result.summary_by_op()
    if rows:
        # examples: how many explored examples showed the finding's signature.
        table = Table(title="findings by op and kind")
        for column in ("op", "kind", "severity", "examples"):
            table.add_column(column)
        for op, kind, severity, count in rows:
            table.add_row(_plain(op), kind, severity, str(count))
        console.print(table)
    for finding in result.findings + result.warnings:
        where = format_point(finding.variables, finding.point)
        console.print(f"[{'red' if finding.severity == 'error' else 'yellow'}]{finding.severity}[/] "
                      f"{finding.kind} · {_plain(finding.blame.op or finding.blame.backend)}: "
                      f"{_plain(finding.expression)} at {where}\n    {_plain(finding.message)}")
    if result.unjudged:
        console.print(f"[red]{_plain(result.unjudged[:1].upper() + result.unjudged[1:])}[/red]; this run proves nothing.")
    elif not result.findings:
        console.print(f"[green]No discrepancies[/green] in {plural(result.examples, 'example')}"
                      + (f" ({plural(len(result.warnings), 'warning')})" if result.warnings else "") + ".")
    from reports.verdict import judged_sentence

    judged = judged_sentence(result.judged or {}, str(result.settings.get("dtype") or "float64")) if not result.unjudged else None
    if judged:
        console.print(_plain(judged[:1].upper() + judged[1:]))
    for label, path in (("JSON", json_path), ("report", report_path)):
        if path is not None:
            console.print(f"{label}: {path}")


def _plain(text: Any) -> str:
    """Text shown as is (no rich markup from engine names or messages)."""
    from rich.markup import escape

    return escape(str(text))


# -- compare ---------------------------------------------------------------------------------

def _parse_point(text: str) -> dict[str, float]:
    point: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise UsageFailure(f"--at: {part!r} is not of the form name=number (e.g. --at x0=1.5,x1=-2)")
        try:
            number = float(value)
        except ValueError:
            raise UsageFailure(f"--at: {value.strip()!r} for {name.strip()} is not a number") from None
        if not math.isfinite(number):
            raise UsageFailure(f"--at: {name.strip()}={value.strip()} is not a finite number")
        point[name.strip()] = number
    return point


# ignore_unknown_options: an expression may start with "-" ("-a**3 + b").
@cli.command(epilog=EXAMPLES, context_settings={"ignore_unknown_options": True})
@click.argument("expression")
@click.option("--at", "at", required=True, metavar="x=1,y=2", help="The point: a value for each variable.")
@click.option("--engine", "target", default="engine:Value", show_default=True, metavar="TARGET",
              help="The engine class to include, or 'none'.")
@click.option("--op", "op_texts", multiple=True, metavar="DEFINITION",
              help="Define an op used in EXPRESSION: 'softplus(x) = log(1 + exp(x))' (repeatable; library ops need none).")
@click.option("--order", type=click.IntRange(1, 2), default=1, show_default=True,
              help="2: also show the Hessian of every oracle beside the exact one.")
def compare(expression: str, at: str, target: str, op_texts: tuple[str, ...], order: int = 1) -> None:
    """Show every oracle's value and gradient of EXPRESSION at one point."""
    from verifier.comparison import compare as run_compare

    _define(op_texts, None)
    point = _parse_point(at)
    try:
        result = run_compare(expression, point, engine=False if target == "none" else target, order=order)
    except (ValueError, TypeError) as error:  # parse errors, bad points, bad targets
        raise UsageFailure(str(error)) from None
    print(result)
    raise SystemExit(1 if result.verdict == "disagree" else 0)


# -- survey ----------------------------------------------------------------------------------

@cli.command(epilog=EXAMPLES)
@click.option("--frameworks", default=None, metavar="LIST",
              help="Adapters to run, e.g. torch,torch:float32,jax (default: every installed one).")
@click.option("--examples", type=click.IntRange(min=1), default=3000, show_default=True, help="Examples per framework and seed.")
@click.option("--seeds", default="1,2,3", show_default=True, metavar="LIST", help="Comma-separated seeds.")
@click.option("--ops", default=None, metavar="LIST", help="Ops to exercise (default: each framework's; 'all' adds the library).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("survey"), show_default=True,
              help="Folder for survey.md, survey.json and one report per framework and seed.")
def survey(frameworks: str | None, examples: int, seeds: str, ops: str | None, out_dir: Path) -> None:
    """Run every installed framework adapter and write one table of what was found."""
    from verifier.survey import survey as run_survey

    try:
        chosen_seeds = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise UsageFailure(f"--seeds {seeds!r}: expected comma-separated integers such as 1,2,3") from None
    if not chosen_seeds or min(chosen_seeds) < 0:
        raise UsageFailure(f"--seeds {seeds!r}: expected comma-separated integers >= 0")
    names = [n.strip() for n in frameworks.split(",") if n.strip()] if frameworks else None
    try:
        result = run_survey(names, examples=examples, seeds=chosen_seeds, ops=ops, out_dir=out_dir,
                            progress=lambda text: print(f"verifier: survey: {text}", file=sys.stderr, flush=True))
    except ValueError as error:
        raise UsageFailure(str(error)) from None
    print(result.to_markdown())
    print(f"\ntable: {out_dir / 'survey.md'}; reports: {out_dir}/")
    raise SystemExit(1 if any(r.errors for r in result.rows) else 0)


# -- replay ----------------------------------------------------------------------------------

@cli.command(epilog=EXAMPLES)
@click.argument("findings", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--id", "finding_id", default=None, help="Replay only this finding (any list, oracle findings included).")
@click.option("--engine", "target", default=None, metavar="TARGET", help="Replay against another engine (default: the one recorded).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True)
def replay(findings: Path, finding_id: str | None, target: str | None, timeout: float) -> None:
    """Re-judge recorded findings (errors and warnings; an oracle finding with --id)
    and say whether each still fails.

    FINDINGS is the JSON report (written by --json, or next to --report)."""
    from verifier.loader import EngineLoadError
    from verifier.formats import format_named, using
    from verifier.replay import load_findings, replay_finding

    if findings.suffix.lower() in (".html", ".htm"):
        beside = findings.with_suffix(".json")
        hint = (f"verifier replay {beside}" if beside.exists()
                else "the JSON report, written next to --report or by --json")
        raise UsageFailure(f"{findings} is the HTML report; replay reads the JSON report: {hint}")
    try:
        report, chosen = load_findings(findings, finding_id)
    except ValueError as error:
        raise UsageFailure(str(error)) from None
    engine = target or report.get("engine") or "engine:Value"
    settings = report.get("settings") if isinstance(report.get("settings"), dict) else {}
    try:
        number_format = format_named(settings.get("dtype") or "float64")
    except ValueError as error:
        raise UsageFailure(f"{findings}: settings: {error}") from None
    failing = 0
    try:
        for finding in chosen:
            with using(number_format):  # judged as the campaign judged it
                still, text = replay_finding(engine, finding, timeout=timeout)
            failing += still
            print(text)
    except EngineLoadError as error:
        # `check` records an engine file's absolute path; older reports hold it as typed.
        hint = "" if target else (
            f" (the engine recorded in {findings}; a relative path there is relative to the folder the check "
            "ran in: replay from there, or pass --engine path/to/file.py:Class)")
        raise UsageFailure(f"{error}{hint}") from None
    except ValueError as error:
        raise UsageFailure(str(error)) from None
    raise SystemExit(1 if failing else 0)


# -- entry point -----------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI; every usage error is one line on stderr with exit code 2."""
    # Hypothesis keeps a cache (constants of modules) in ./.hypothesis by default;
    # a command should not leave that in the user's working folder.
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "crossgrad" / "hypothesis"
    os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(cache))
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="verifier", standalone_mode=False)
    except UsageFailure as error:
        _fail(str(error))
    except click.UsageError as error:
        if type(error).__name__.startswith("NoArgsIsHelp") and error.ctx is not None:
            click.echo(error.ctx.get_help())  # plain `verifier`: show the help
            raise SystemExit(2) from None
        _fail(error.format_message())
    except click.exceptions.Abort:
        _fail("interrupted", code=130)
    except KeyboardInterrupt:
        _fail("interrupted", code=130)
    except click.exceptions.Exit as done:
        raise SystemExit(done.exit_code) from None
    raise SystemExit(0)


def _fail(message: str, code: int = 2) -> None:
    text = " ".join(message.split())
    print(f"verifier: error: {text}", file=sys.stderr)
    raise SystemExit(code)
