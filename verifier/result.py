"""The result of a campaign: :class:`CampaignResult`, a frozen dataclass, and its
JSON report (``to_dict``, the ``crossgrad-findings/1`` schema), which ``reports``
turns into the HTML page.

:func:`verifier.campaign.check_engine` makes one; the CLI, notebooks and
``verifier replay`` read it.

Example:
    >>> from verifier.campaign import check_engine
    >>> report = check_engine("engine:Value", examples=5, seed=1, ops="add").to_dict()
    >>> report["schema"], report["summary"]["errors"]
    ('crossgrad-findings/1', 0)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from verifier.findings import Finding, jsonable

__all__ = ["CampaignResult"]


@dataclass(frozen=True)
class CampaignResult:
    """What a campaign found.

    Attributes:
        engine: the engine's target (``module:Class`` or ``file.py:Class``).
        seed, examples, requested: the seed, cases judged and cases asked for.
        ops: the ops exercised (the requested ones the engine supports).
        supported, missing: the engine's ops, and the table's ops it lacks.
        findings: error findings, shrunk and blamed (the JSON ``discrepancies``).
        warnings: the engine's warning findings (precision, robustness outside the
            domain).
        oracle_findings: where an oracle other than the engine (torch) disagreed with
            the exact reference: notes for researchers, never the engine's fault.
        quarantined: ops that crash or hang alone: reported once, then not generated.
        counts: judged points by class; notes: oracle limits seen.
        conventions: kink conventions, e.g. ``relu'(0) = 0``.
        duration: seconds; stopped: ``completed``, ``time-budget`` or ``interrupted``.
        unjudged: why nothing was judged ("" when something was): then the run is
            not ``ok``, whatever it found.
        judged: values and partials by whether they were judged, or why not:
            ``{"values": {"judged": n, ...}, "partials": {...}}`` (empty if the judge
            does not count them).
        definitions: the defined ops exercised (:meth:`OpDefinition.to_json`):
            ``replay`` defines them again from the report alone.
        occurrences: how many examples showed each signature ``(kind, backend,
            op, severity)`` while exploring (empty if not counted): the count of
            :meth:`summary_by_op`.

    In a notebook a result shows as the report's verdict, findings by op and
    finding cards; ``repr()`` is one line; :meth:`write_report` writes the HTML
    page (and its JSON) from Python.

    Example:
        >>> from verifier.campaign import check_engine
        >>> result = check_engine("engine:Value", examples=5, seed=1, ops="add")
        >>> result
        <CampaignResult engine:Value: no discrepancies in 5 examples (seed 1)>
    """

    engine: str
    seed: int
    examples: int
    requested: int
    ops: tuple[str, ...]
    supported: tuple[str, ...]
    missing: tuple[str, ...]
    findings: tuple[Finding, ...]
    warnings: tuple[Finding, ...]
    counts: dict[str, int]
    notes: dict[str, int]
    conventions: tuple[str, ...]
    duration: float
    stopped: str
    workers: int = 1
    skipped: int = 0
    oracle_findings: tuple[Finding, ...] = ()
    quarantined: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    unjudged: str = ""
    judged: dict[str, dict[str, int]] = field(default_factory=dict)
    occurrences: dict[tuple, int] = field(default_factory=dict)
    definitions: tuple[dict[str, Any], ...] = ()

    @property
    def ok(self) -> bool:
        """No error findings, and something was judged (a run that checked nothing
        proves nothing)."""
        return not self.findings and not self.unjudged

    def summary_by_op(self) -> list[tuple[str, str, str, int]]:
        """``(op, kind, severity, count)`` rows, one per finding signature; count is
        how many examples showed it while exploring (at least 1: a finding of the
        smoke test, or of an uncounted run, counts once)."""
        rows: Counter = Counter()
        for f in self.findings + self.warnings:
            shown = self.occurrences.get((f.kind, f.blame.backend, f.blame.op, f.severity), 0)
            rows[(f.blame.op or f.blame.backend, f.kind, f.severity)] += max(1, shown)
        return [(op, kind, sev, n) for (op, kind, sev), n in sorted(rows.items())]

    def __repr__(self) -> str:
        from verifier.display import plural

        tried = f"{plural(self.examples, 'example')} (seed {self.seed})"
        if self.unjudged:
            text = f"{self.unjudged} ({tried})"
        elif not self.findings:
            text = f"no discrepancies in {tried}"
        else:
            ops = dict.fromkeys(str(f.blame.op or f.blame.backend) for f in self.findings)
            text = f"{plural(len(self.findings), 'error')} in {tried}; at fault: {', '.join(ops)}"
        extra = [plural(n, word) for n, word in ((len(self.warnings), "warning"), (len(self.oracle_findings), "oracle note")) if n]
        stopped = "" if self.stopped == "completed" else f"; stopped early ({self.stopped})"
        return f"<CampaignResult {self.engine}: {text}{' (' + ', '.join(extra) + ')' if extra else ''}{stopped}>"

    def _repr_html_(self) -> str:
        """The report's verdict and findings by op, then each finding's card."""
        from verifier.display import result_html

        shown = self.findings + self.warnings + self.oracle_findings
        return result_html(self.to_dict(), repr(self), [(f.to_dict(), str(f)) for f in shown], engine=self.engine)

    def write_json(self, path: Any) -> Any:
        """Write the JSON report (what ``verifier check --json`` writes).

        Args:
            path: where (a str or a path); missing folders are made.

        Returns:
            The path written, a :class:`pathlib.Path`.
        """
        from reports import write_json

        return write_json(self.to_dict(), path)

    def write_report(self, path: Any, *, json_path: Any = None) -> Any:
        """Write the HTML report to ``path`` and the JSON report beside it (what
        ``verifier check --report`` writes).

        Args:
            path: the page, e.g. ``"report.html"`` (a str or a path).
            json_path: the JSON report (default: ``path`` with the suffix ``.json``),
                which the page's ``verifier replay`` lines name.

        Returns:
            The page's path, a :class:`pathlib.Path`.

        Example:
            >>> import tempfile, pathlib
            >>> from verifier.campaign import check_engine
            >>> folder = pathlib.Path(tempfile.mkdtemp())
            >>> result = check_engine("engine:Value", examples=5, seed=1, ops="add")
            >>> result.write_report(folder / "r.html").name, (folder / "r.json").exists()
            ('r.html', True)
        """
        from pathlib import Path

        from reports import write_html, write_json

        report = self.to_dict()
        target = Path(json_path) if json_path is not None else Path(path).with_suffix(".json")
        write_json(report, target)
        return write_html(report, path, json_path=target)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (see the README for the schema)."""
        from verifier import __version__

        return jsonable({
            "schema": "crossgrad-findings/1",
            "tool": {"name": "crossgrad", "version": __version__},
            "engine": self.engine,
            "seed": self.seed,
            "examples": self.examples,
            "examples_requested": self.requested,
            "ops": list(self.ops),
            "ops_supported": list(self.supported),
            "ops_missing": list(self.missing),
            "ops_quarantined": list(self.quarantined),
            "duration_s": round(self.duration, 3),
            "stopped": self.stopped,
            "workers": self.workers,
            "settings": self.settings,
            "summary": {
                "errors": len(self.findings),
                "warnings": len(self.warnings),
                "by_op": [{"op": op, "kind": kind, "severity": sev, "count": n} for op, kind, sev, n in self.summary_by_op()],
                "points": dict(self.counts),
                **({"judged": self.judged} if self.judged else {}),
                "oracle_notes": dict(self.notes),
                "skipped_examples": self.skipped,
            },
            "conventions": list(self.conventions),
            "discrepancies": [f.to_dict() for f in self.findings],
            "warnings": [f.to_dict() for f in self.warnings],
            "oracle_findings": [f.to_dict() for f in self.oracle_findings],
            # Only when it applies, so that every other report keeps its shape.
            **({"nothing_judged": self.unjudged} if self.unjudged else {}),
            **({"definitions": list(self.definitions)} if self.definitions else {}),
        })
