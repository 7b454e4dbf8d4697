"""The suites need crossgrad's pytest plugin (say so in one line if it is missing),
every test must compare something (see :func:`properties.compared`), and no
example has a deadline."""

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """No deadline for the suites' examples, whatever profile is loaded (Hypothesis's
    own ``default`` has 200 ms): a whole MLP, or two xdist workers sharing two busy
    cores, take longer, and a DeadlineExceeded would stand in for the verdict."""
    from hypothesis import is_hypothesis_test, settings

    for item in items:
        test = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
        if test is None or not is_hypothesis_test(test) or getattr(item, "module", None) is None:
            continue
        if not item.module.__name__.startswith("properties."):
            continue
        current = getattr(test, "_hypothesis_internal_use_settings", None) or settings.default
        if current.deadline is not None:
            test._hypothesis_internal_use_settings = settings(current, deadline=None)


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
