"""The reliability suite: hostile bodies, any order of copies, store and API faults,
load. Each test reports its figures with the ``figures`` fixture; they are printed at
the end of the run (and quoted in docs/guarantees.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

# Shared with tests/functional (DynamoDB Local, tables from template.yaml).
from tests.functional.conftest import ddb, dynamodb_local, store, writer  # noqa: F401

pytestmark = pytest.mark.dynamodb_local

_FIGURES: list[tuple[str, str, Any]] = []


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[[str, Any], None]:
    """``figures(name, value)``: one printed line under the test's name."""

    def report(name: str, value: Any) -> None:
        _FIGURES.append((request.node.name, name, value))

    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("reliability figures")
    for test, name, value in _FIGURES:
        terminalreporter.write_line(f"{test}: {name} = {value}")
