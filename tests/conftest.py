"""Fixtures shared by the report tests (JSON, HTML, browser)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.engines import corpus


@pytest.fixture(scope="session")
def real_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """``CampaignResult.to_dict()`` of four real runs (about 6 s), by name: a
    correct engine, the float32 tanh mutant, the hostile-strings engine and the
    two-bug student engine. Shared by every test: treat the reports as read-only.
    """
    from verifier.campaign import check_engine

    mutant = corpus.MUTANTS_BY_NAME["tanh_grad_float32"]
    mutant_path = corpus.write_engine(tmp_path_factory.mktemp("e"), mutant.name, mutant.patches)
    made = {}
    for name, (target, options) in corpus.REPORT_CAMPAIGNS.items():
        result = check_engine(target or f"{mutant_path}:Value", seed=0, **options)
        made[name] = json.loads(json.dumps(result.to_dict(), allow_nan=False))  # as a reader sees it
    return made


@pytest.fixture(autouse=True)
def _no_defined_ops_leak() -> Any:
    """Ops a test defines leave the table with it (other tests iterate the table)."""
    yield
    if "verifier.define" in __import__("sys").modules:
        from verifier.define import definitions, forget_ops

        if definitions():
            forget_ops()
