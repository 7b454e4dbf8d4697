"""The survey: every installed adapter, one table, one report each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from verifier.survey import survey


def test_survey_writes_the_table_and_a_report_per_framework(tmp_path: Path) -> None:
    result = survey(["torch", "torch:float32"], examples=40, seeds=(1,), out_dir=tmp_path)
    assert [(r.name, r.number_format, r.examples) for r in result.rows] == [("torch", "float64", 40), ("torch:float32", "float32", 40)]
    assert all(r.values_judged > 0 and r.version.startswith("2.") for r in result.rows)
    table = (tmp_path / "survey.md").read_text(encoding="utf-8")
    assert "| torch:float32 | 2." in table and "| float32 | 1 | 40 |" in table
    assert json.loads((tmp_path / "survey.json").read_text(encoding="utf-8"))["rows"][0]["name"] == "torch"
    assert (tmp_path / "torch-float32-seed1.html").exists()


def test_survey_refuses_unknown_or_missing_frameworks() -> None:
    with pytest.raises(ValueError, match="unknown framework adapter 'tensorflow'"):
        survey(["tensorflow"], examples=1, seeds=(1,))
