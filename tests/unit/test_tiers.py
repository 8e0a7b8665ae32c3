"""The tier rules of tests/conftest.py hold for the tests themselves."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import TIER_TIMEOUT, TIMEOUT_SCALE, ProcessInFastTest


def test_a_fast_test_cannot_start_a_process() -> None:
    """Starting a child process in a fast test fails with the tier named."""
    with pytest.raises(ProcessInFastTest, match=r"pytest\.mark\.integration"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)


def test_an_unmarked_test_is_fast_with_the_fast_time_limit(request: pytest.FixtureRequest) -> None:
    """An unmarked test gets the fast marker and the fast tier's time limit."""
    assert request.node.get_closest_marker("fast") is not None
    assert request.node.get_closest_marker("integration") is None
    limit = request.node.get_closest_marker("timeout")
    assert limit is not None and limit.args == (TIER_TIMEOUT["fast"] * TIMEOUT_SCALE,)


@pytest.mark.integration
def test_an_integration_test_may_start_a_process(request: pytest.FixtureRequest) -> None:
    """A test marked integration runs processes and gets the integration time limit."""
    assert subprocess.run([sys.executable, "-c", "pass"], check=False).returncode == 0
    limit = request.node.get_closest_marker("timeout")
    assert limit is not None and limit.args == (TIER_TIMEOUT["integration"] * TIMEOUT_SCALE,)
