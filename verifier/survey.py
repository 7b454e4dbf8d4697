"""A survey of real frameworks: every installed adapter, the same campaign, one table.

For each adapter of :mod:`verifier.adapters` whose framework is installed, and each
seed, :func:`survey` runs :func:`verifier.check_engine` (each framework judged in its
own format), writes that run's report, and adds a row to one table: framework,
version, format, examples, points judged, findings by cause. ``verifier survey``
prints the table as Markdown and writes it (``survey.md``, ``survey.json``) beside
the reports.

Example::

    result = survey(["torch", "torch:float32"], examples=300, seeds=(1,), out_dir="survey")
    print(result.to_markdown())
"""

from __future__ import annotations

import importlib.metadata
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from verifier.adapters import ADAPTERS, available, framework_of

__all__ = ["SurveyRow", "SurveyResult", "survey"]

@dataclass(frozen=True)
class SurveyRow:
    """One framework's campaign at one seed.

    Attributes:
        name: the adapter (``torch:float32``); framework, version, number_format.
        examples, values_judged, partials_judged: what was judged.
        errors, warnings: findings by cause, e.g. ``{"engine": 1, "precision": 2}``.
        findings: each error and warning as ``{severity, kind, cause, op, expression,
            point, message}``; report: the HTML report's path ("" if none was written).
    """

    name: str
    framework: str
    version: str
    number_format: str
    seed: int
    examples: int
    values_judged: int
    partials_judged: int
    errors: dict[str, int]
    warnings: dict[str, int]
    findings: tuple[dict[str, Any], ...] = ()
    report: str = ""


@dataclass(frozen=True)
class SurveyResult:
    """The survey's rows, in the order they ran."""

    rows: tuple[SurveyRow, ...] = field(default_factory=tuple)

    def to_markdown(self) -> str:
        """The table, one row per framework and seed, then every finding."""
        lines = ["| framework | version | format | seed | examples | values judged | partials judged | errors by cause | warnings by cause |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for r in self.rows:
            lines.append(f"| {r.name} | {r.version} | {r.number_format} | {r.seed} | {r.examples:,} | {r.values_judged:,} | "
                         f"{r.partials_judged:,} | {_causes(r.errors)} | {_causes(r.warnings)} |")
        shown = [(r, f) for r in self.rows for f in r.findings]
        if shown:
            lines += ["", "Findings:", ""]
            lines += [f"- **{r.name}** (seed {r.seed}), {f['severity']} {f['kind']} · {f['op']}: `{f['expression']}` at "
                      f"{f['point']}: {f['message']}" for r, f in shown]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [asdict(r) for r in self.rows]}


def _causes(counts: dict[str, int]) -> str:
    return ", ".join(f"{cause} {n}" for cause, n in sorted(counts.items())) or "none"


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(framework_of(name))  # each framework's distribution has its name
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _finding(f: Any) -> dict[str, Any]:
    point = ", ".join(f"{v}={x!r}" for v, x in zip(f.variables, f.point))
    return {"severity": f.severity, "kind": f.kind, "cause": f.cause, "op": f.blame.op, "expression": f.expression,
            "point": point, "message": f.message}


def survey(names: Sequence[str] | None = None, *, examples: int = 3000, seeds: Sequence[int] = (1, 2, 3),
           ops: str | None = None, out_dir: str | Path | None = None, workers: int = 1,
           progress: Callable[[str], None] | None = None) -> SurveyResult:
    """Run every installed adapter (or ``names``) for ``examples`` at each seed.

    Raises:
        ValueError: an unknown adapter name, or one whose framework is not installed.
    """
    from verifier.campaign import check_engine

    here = available()
    chosen = list(names) if names else here
    for name in chosen:
        if name not in ADAPTERS:
            raise ValueError(f"unknown framework adapter {name!r}; expected some of: {', '.join(ADAPTERS)}")
        if name not in here:
            raise ValueError(f"adapter {name!r} needs {framework_of(name)}: pip install 'crossgrad[{ADAPTERS[name][2]}]'")
    folder = Path(out_dir) if out_dir is not None else None
    rows = []
    for name in chosen:
        for seed in seeds:
            if progress is not None:
                progress(f"{name}, seed {seed}: {examples:,} examples")
            result = check_engine(name, examples=examples, seed=seed, ops=ops, workers=workers, progress=False)
            report = ""
            if folder is not None:
                path = folder / f"{name.replace(':', '-')}-seed{seed}.html"
                result.write_report(path)
                report = str(path)
            judged = result.judged or {}
            rows.append(SurveyRow(
                name=name, framework=framework_of(name), version=_version(name), number_format=result.settings.get("dtype", "?"),
                seed=seed, examples=result.examples,
                values_judged=judged.get("values", {}).get("judged", 0), partials_judged=judged.get("partials", {}).get("judged", 0),
                errors=dict(Counter(f.cause for f in result.findings)), warnings=dict(Counter(f.cause for f in result.warnings)),
                findings=tuple(_finding(f) for f in (*result.findings, *result.warnings)), report=report,
            ))
    outcome = SurveyResult(tuple(rows))
    if folder is not None:
        (folder / "survey.md").write_text(outcome.to_markdown() + "\n", encoding="utf-8")
        (folder / "survey.json").write_text(json.dumps(outcome.to_dict(), indent=1, allow_nan=False, default=str) + "\n", encoding="utf-8")
    return outcome
