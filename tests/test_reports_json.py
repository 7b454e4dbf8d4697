"""reports.write_json and reports.validate, on the reports of real campaigns (the
``real_reports`` fixture of conftest.py)."""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

import reports
from reports import SCHEMA_PATH, validate, write_json
from tests.engines.corpus import REPORT_CAMPAIGNS


def all_findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    return report["discrepancies"] + report.get("warnings", []) + report.get("oracle_findings", [])


# -- the campaigns gave what the other tests rely on ---------------------------------------

def test_real_reports_show_the_expected_findings(real_reports):
    assert real_reports["clean"]["discrepancies"] == []
    [tanh] = real_reports["float32"]["discrepancies"]
    assert (tanh["kind"], tanh["blame"]["op"]) == ("gradient", "tanh")
    [log] = real_reports["hostile"]["discrepancies"]
    assert "<script>" in log["message"]
    assert {(f["kind"], f["blame"]["op"]) for f in real_reports["student"]["discrepancies"]} == {("invalid", "mul"), ("exception", "sub")}


# -- write_json ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(REPORT_CAMPAIGNS))
def test_write_json_round_trips(real_reports, tmp_path, name):
    report = real_reports[name]
    path = write_json(report, tmp_path / "findings.json")
    assert path == tmp_path / "findings.json"
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == report
    assert text.endswith("\n") and "\n  " in text  # pretty, one field a line
    assert list(json.loads(text)) == list(report)  # keys keep the producer's order


def test_write_json_accepts_str_paths_new_folders_and_unicode(tmp_path):
    report = {"engine": "étude.py:Value", "seed": 0, "examples": 1, "ops": ["add"], "discrepancies": []}
    path = write_json(report, str(tmp_path / "out" / "run" / "f.json"))
    assert isinstance(path, Path)
    assert "étude" in path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "bad, where",
    [
        ({"ops": {"add", "mul"}}, "$.ops"),  # a set
        ({"point": {"x0": float("nan")}}, "$.point.x0"),  # a float nan: must be the string "nan"
        ({"grad": [1.0, float("-inf")]}, "$.grad[1]"),
        ({"engine": object()}, "$.engine"),
        ({"counts": {1: 2, (1, 2): 3}}, "$.counts"),  # a key json cannot write
    ],
)
def test_write_json_fails_cleanly_and_leaves_the_old_file(tmp_path, bad, where):
    path = tmp_path / "findings.json"
    old = write_json({"engine": "engine:Value", "discrepancies": []}, path).read_bytes()
    with pytest.raises(ValueError, match="not JSON-safe") as info:
        write_json({"engine": "x", **bad}, path)
    assert where in str(info.value)
    assert "\n" not in str(info.value)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["findings.json"]  # no temp file left behind


def test_write_json_is_atomic_when_the_rename_fails(tmp_path, monkeypatch):
    path = tmp_path / "findings.json"
    old = write_json({"engine": "old"}, path).read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_json({"engine": "new"}, path)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["findings.json"]


def test_written_files_get_the_usual_permissions(tmp_path):
    plain = tmp_path / "plain.json"
    plain.write_text("{}")  # what open() gives under this umask
    written = write_json({"engine": "e"}, tmp_path / "findings.json")
    assert written.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    os.chmod(written, 0o640)
    write_json({"engine": "again"}, written)  # replacing keeps the file's mode
    assert written.stat().st_mode & 0o777 == 0o640


def test_write_json_does_not_create_a_file_on_failure(tmp_path):
    with pytest.raises(ValueError):
        write_json({"x": {1, 2}}, tmp_path / "new.json")
    assert os.listdir(tmp_path) == []


# -- the schema ------------------------------------------------------------------------------------

def test_schema_is_a_valid_draft_2020_12_schema():
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {"engine", "seed", "examples", "ops", "discrepancies"} <= set(schema["required"])
    finding = schema["$defs"]["finding"]
    assert {"kind", "expression", "point", "blame", "oracles", "severity", "cause", "message"} <= set(finding["required"])
    assert finding["additionalProperties"] is False and schema["additionalProperties"] is False


@pytest.mark.parametrize("name", list(REPORT_CAMPAIGNS))
def test_validate_accepts_real_reports(real_reports, name):
    validate(real_reports[name])


def test_validate_accepts_exact_adjoints_in_graph_nodes(real_reports):
    # `grad` (the exact d output / d node) is what the page needs to show where
    # the backward pass parts from the truth; the verifier may write it.
    report = copy.deepcopy(real_reports["float32"])
    for node in report["discrepancies"][0]["graph"]:
        node["grad"] = 0.5
    validate(report)
    report["discrepancies"][0]["graph"][0]["grad"] = "(1+2j)"  # exact adjoints are real
    with pytest.raises(ValueError, match=r"graph\[0\]"):
        validate(report)


def test_validate_accepts_non_finite_and_complex_strings(real_reports):
    report = copy.deepcopy(real_reports["float32"])
    finding = report["discrepancies"][0]
    finding["oracles"]["engine"]["value"] = "(6.123233995736766e-17-1j)"
    finding["oracles"]["engine"]["gradient"] = ["nan"]
    finding["value_floor"] = "inf"
    finding["steps"][0] = [0.1, "-inf", "nan"]
    validate(report)


def _break(report: dict[str, Any], how: str) -> dict[str, Any]:
    report = copy.deepcopy(report)
    finding = report["discrepancies"][0]
    if how == "no discrepancies":
        del report["discrepancies"]
    elif how == "kind oops":
        finding["kind"] = "oops"
    elif how == "float nan":
        finding["point"]["x0"] = float("nan")
    elif how == "float inf in a gradient":
        finding["oracles"]["engine"]["gradient"][0] = float("inf")
    elif how == "no blame op":
        del finding["blame"]["op"]
    elif how == "misspelled field":
        report["discrepancy"] = report.pop("discrepancies")
    elif how == "bad severity":
        finding["severity"] = "fatal"
    elif how == "word for a number":
        finding["point"]["x0"] = "one"
    elif how == "seed as text":
        report["seed"] = "0"
    elif how == "tuple for a list":
        finding["steps"][0] = tuple(finding["steps"][0])
    return report


@pytest.mark.parametrize(
    "how, where, words",
    [
        ("no discrepancies", "at $:", "'discrepancies' is a required property"),
        ("kind oops", "at $.discrepancies[0].kind:", "'oops'"),
        ("float nan", "at $.discrepancies[0].point.x0:", "float nan is not JSON"),
        ("float inf in a gradient", "at $.discrepancies[0].oracles.engine.gradient[0]:", "float inf"),
        ("no blame op", "at $.discrepancies[0].blame:", "'op' is a required property"),
        ("misspelled field", "at $:", "discrepanc"),
        ("bad severity", "at $.discrepancies[0].severity:", "'fatal'"),
        ("word for a number", "at $.discrepancies[0].point.x0:", "'one'"),
        ("seed as text", "at $.seed:", "'0'"),
        ("tuple for a list", "at $.discrepancies[0].steps[0]:", "tuple"),
    ],
)
def test_validate_rejects_broken_reports_naming_the_place(real_reports, how, where, words):
    broken = _break(real_reports["float32"], how)
    with pytest.raises(ValueError) as info:
        validate(broken)
    message = str(info.value)
    assert where in message and words in message, message
    assert "\n" not in message


def test_validate_needs_jsonschema_and_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # import jsonschema -> ImportError
    with pytest.raises(ImportError, match="pip install"):
        validate({"engine": "e:V", "seed": 0, "examples": 1, "ops": [], "discrepancies": []})


def test_public_api():
    assert set(reports.__all__) == {"write_json", "render_html", "write_html", "finding_card", "summary_fragment",
                                    "validate", "SCHEMA_PATH"}
    for name in reports.__all__[:-1]:
        assert ">>> " in getattr(reports, name).__doc__  # every function shows an example
    assert SCHEMA_PATH.is_file()
