"""The words at the top of a report: the headline, what was judged, the index.

A reader decides in one look whether to read on, so the headline names the ops
at fault (not only a count), and a clean verdict says how much was judged and
what was not: "no discrepancy" over 10 judged values means little, over 2,372
of 2,400 a lot. Plain strings and dicts only; the template escapes them.

Example:
    >>> headline([{"op": "tanh", "kind": "gradient", "id": "F1"},
    ...           {"op": "mul", "kind": "value", "id": "F2"}], "error")["text"]
    '2 errors: tanh (gradient), mul (value)'
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

__all__ = [
    "verdict_banner", "headline", "judged_sentence", "judged_short", "judged_total", "judged_rows", "index_row",
    "SHORT_REASONS", "UNJUDGED_REASONS", "BELOW", "plural",
]

# Why a quantity was not judged, in a few words (the long forms are in html.py).
SHORT_REASONS = {
    "outside-domain": "outside the domain",
    "ill-conditioned": "ill-conditioned",
    "noise-beyond-float64": "noise beyond float64",
    "not-representable": "beyond float64",
    "undefined": "undefined derivative",
    "kink": "at a kink",
}
MESSAGE_CHARS = 110  # an index row's message: one line at 1280 px


def plural(n: Any, word: str, words: str | None = None) -> str:
    count = f"{n:,}" if isinstance(n, int) else str(n)
    return f"{count} {word if n == 1 else (words or word + 's')}"


def headline(findings: Sequence[Mapping[str, Any]], severity: str) -> dict[str, Any]:
    """"2 errors: tanh (gradient), mul (value)": the count, then each op at fault
    (in the order of the findings, each linked to its first one) with its kinds."""
    by_op: dict[str, dict[str, Any]] = {}
    for f in findings:
        entry = by_op.setdefault(f["op"], {"op": f["op"], "anchor": f["id"], "kinds": {}})
        entry["kinds"][f["kind"]] = entry["kinds"].get(f["kind"], 0) + 1
    ops = []
    for entry in by_op.values():
        kinds = ", ".join(kind if n == 1 else f"{kind} ×{n}" for kind, n in entry["kinds"].items())
        ops.append({"op": entry["op"], "anchor": entry["anchor"], "kinds": kinds})
    count = plural(len(findings), severity)
    text = count + ": " + ", ".join(f"{o['op']} ({o['kinds']})" for o in ops) if ops else count
    return {"count": count, "ops": ops, "text": text}


def _counts(judged: Mapping[str, Any], key: str) -> dict[str, int]:
    counts = judged.get(key)
    if not isinstance(counts, Mapping):
        return {}
    return {str(k): v for k, v in counts.items() if isinstance(v, int) and not isinstance(v, bool)}


# What is judged, as the JSON's "judged" names it: (key, noun, plural, short noun).
QUANTITIES = (("values", "value", "values", "value"), ("partials", "partial derivative", "partial derivatives", "partial"),
              ("hessians", "Hessian entry", "Hessian entries", "Hessian entry"),
              ("tangents", "forward-mode partial", "forward-mode partials", "forward-mode partial"))


def judged_short(judged: Mapping[str, Any]) -> str | None:
    """"401 of 480 values and 456 of 552 partial derivatives judged", or None if not recorded."""
    parts = []
    for key, word, words, _ in QUANTITIES:
        counts = _counts(judged, key)
        if counts:
            total = sum(counts.values())
            parts.append(f"{counts.get('judged', 0):,} of {plural(total, word, words)}")
    return (", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]) + " judged" if parts else None


def _in_format(text: str, number_format: str) -> str:
    """A reason's words for a campaign in ``number_format`` (the judge's noise model
    and what counts as representable are the engine's format's, not float64's)."""
    return text.replace("float64", number_format)


def judged_sentence(judged: Mapping[str, Any], number_format: str = "float64") -> str | None:
    """What was judged and, by reason, what was not; None if not recorded.

    Example:
        >>> judged_sentence({"values": {"judged": 9, "outside-domain": 1},
        ...                  "partials": {"judged": 18, "outside-domain": 1, "undefined": 1}})
        '9 of 10 values and 18 of 20 partial derivatives judged; not judged: outside the domain: 1 value, 1 partial; undefined derivative: 1 partial.'
        >>> judged_sentence({"values": {"judged": 9, "not-representable": 1}}, "float32")
        '9 of 10 values judged; not judged: beyond float32: 1 value.'
    """
    short = judged_short(judged)
    if short is None:
        return None
    each = [(_counts(judged, key), short, "Hessian entries" if key == "hessians" else None) for key, _, _, short in QUANTITIES]
    seen = [r for counts, _, _ in each for r, n in counts.items() if r != "judged" and n]
    reasons = [r for r in SHORT_REASONS if r in seen] + sorted({r for r in seen if r not in SHORT_REASONS})
    parts = []
    for reason in reasons:
        counts = [plural(c[reason], word, words) for c, word, words in each if c.get(reason)]
        parts.append(f"{_in_format(SHORT_REASONS.get(reason, reason), number_format)}: {', '.join(counts)}")
    return short + ("; not judged: " + "; ".join(parts) + "." if parts else "; nothing left unjudged.")


def judged_total(judged: Mapping[str, Any]) -> int | None:
    """How many quantities were judged in all, None if not recorded."""
    counts = [_counts(judged, key) for key, *_ in QUANTITIES]
    if not any(counts):
        return None
    return sum(c.get("judged", 0) for c in counts)


EXPRESSION_CHARS = 80  # an MLP loss of 3,000 characters must not take over the index


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1].rstrip()}… ({len(text):,} characters)"


def index_row(f: Mapping[str, Any]) -> dict[str, Any]:
    """One row of "All findings": enough to tell two findings of ``tanh(x0)`` apart."""
    message = str(f.get("message", ""))
    short = message if len(message) <= MESSAGE_CHARS else message[: MESSAGE_CHARS - 1].rstrip() + "…"
    return {
        "id": f["id"], "severity": f["severity"], "kind": f["kind"], "op": f["op"],
        "expression": _short(str(f["expression"]), EXPRESSION_CHARS),
        "point": ", ".join(f"{name} = {x}" for name, x in f["point"]) or "no variables",
        "message": short, "full_message": message,
    }


BELOW = ", each finding with its blamed op and a reproducer below"  # on the page, not in a fragment


def verdict_banner(errors: list[dict], warnings: list[dict], oracle: list[dict], examples: Any,
                   judged: Mapping[str, Any], nothing_judged: str = "", number_format: str = "float64") -> dict[str, Any]:
    """The banner: its colour, the headline (naming the ops at fault) and one line more."""
    others = []
    if warnings and errors:
        others.append(plural(len(warnings), "warning"))
    if oracle:
        others.append(plural(len(oracle), "oracle finding") + " (not the engine's fault)")
    detail = "; ".join(others + [f"in {plural(examples, 'example')}{BELOW}"])
    if errors or warnings:
        top = headline(errors or warnings, "error" if errors else "warning")
        return {"css": "error" if errors else "warning", "count": top["count"] if errors else "Warnings only: " + top["count"],
                "ops": top["ops"], "text": top["text"] if errors else "Warnings only: " + top["text"], "detail": detail}
    total = judged_total(judged)
    if total == 0 or nothing_judged:  # "no discrepancy" over nothing judged would be a false all-clear
        why = nothing_judged or "no value or partial derivative could be judged"
        return {"css": "warning", "count": f"Nothing judged in {plural(examples, 'example')}", "ops": [],
                "text": f"Nothing judged in {plural(examples, 'example')}",
                "detail": f"{why}; not a pass" + (": " + judged_sentence(judged, number_format) if judged_sentence(judged) else ".")}
    sentence = judged_sentence(judged, number_format)
    text = f"No discrepancies in {examples} examples"
    detail = ("no discrepancy: " + sentence) if sentence else "every value and gradient agreed with the exact reference"
    if oracle:
        detail += f" {plural(len(oracle), 'oracle finding')} below (not the engine's fault)."
    return {"css": "ok", "count": text, "ops": [], "text": text, "detail": detail}


# What each reason a quantity was not judged means, for the reader.
UNJUDGED_REASONS = {
    "outside-domain": "outside the domain (the value is undefined)",
    "ill-conditioned": "within float64 noise of a domain edge, or not linear in its noise",
    "undefined": "an infinite or undefined derivative on its path",
    "not-representable": "the exact quantity is beyond float64",
    "noise-beyond-float64": "no float64 computation of it can be trusted (an intermediate over- or underflows)",
    "kink": "at or within noise of a kink: the gradient jumps, so there is no second derivative",
}


def judged_rows(judged: Mapping[str, Any], number_format: str = "float64") -> list[dict[str, Any]]:
    """Rows of the "what was judged" table: values, partial derivatives, Hessian entries."""
    rows = []
    for key, _, label, _ in QUANTITIES:
        counts = _counts(judged, key)
        if not counts:
            continue
        reasons = [(_in_format(UNJUDGED_REASONS.get(str(k), str(k)), number_format), v) for k, v in counts.items() if k != "judged" and v]
        rows.append({"label": label, "judged": counts.get("judged", 0), "total": sum(v for v in counts.values() if isinstance(v, int)), "reasons": reasons})
    return rows
