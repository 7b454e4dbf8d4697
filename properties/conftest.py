"""The suites need crossgrad's pytest plugin (say so in one line if it is missing),
and every test must compare something (see :func:`properties.compared`)."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis.errors import FailedHealthCheck, Unsatisfiable

from properties import tally


def pytest_configure(config: pytest.Config) -> None:
    plugin = sys.modules.get("verifier.pytest_plugin")
    if plugin is None or not config.pluginmanager.is_registered(plugin):
        raise pytest.UsageError(
            "the crossgrad property suites need crossgrad's pytest plugin: "
            "pip install crossgrad (it registers the plugin), or pass -p verifier.pytest_plugin"
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """A test whose examples all compared nothing fails, saying so (Hypothesis's
    own words for it are "Unable to satisfy assumptions", or a health check about
    filtering)."""
    before = tally(item.nodeid)
    try:
        result = yield
    except (Unsatisfiable, FailedHealthCheck) as error:
        examples, points = (a - b for a, b in zip(tally(item.nodeid), before))
        if examples and not points:
            raise pytest.fail.Exception(
                f"{item.name} compared no point in any of its {examples} examples: every point drawn was outside "
                "the domain, at a kink or beyond float64 for the expressions drawn", pytrace=False) from error
        raise
    examples, points = (a - b for a, b in zip(tally(item.nodeid), before))
    if examples and not points:
        pytest.fail(f"{item.name} compared no point in any of its {examples} examples", pytrace=False)
    return result
