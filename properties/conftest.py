"""The suites need crossgrad's pytest plugin; say so in one line if it is missing."""

from __future__ import annotations

import sys

import pytest


def pytest_configure(config: pytest.Config) -> None:
    plugin = sys.modules.get("verifier.pytest_plugin")
    if plugin is None or not config.pluginmanager.is_registered(plugin):
        raise pytest.UsageError(
            "the crossgrad property suites need crossgrad's pytest plugin: "
            "pip install crossgrad (it registers the plugin), or pass -p verifier.pytest_plugin"
        )
