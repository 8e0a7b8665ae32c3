"""Logging: JSON lines with bound context, stdlib (temporalio) records included, noise muted."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from hvlab.telemetry import configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger and structlog back as they were."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in ("pypsrp", "urllib3", "spnego")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in quiet.items():
        logging.getLogger(name).setLevel(old)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_carry_bound_context() -> None:
    """structlog events are JSON lines with contextvars (workflow_id, host) merged in."""
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    structlog.contextvars.bind_contextvars(workflow_id="wf-1", host="SVR1")
    structlog.get_logger("hvlab.test").info("step done", vm="Linux01")
    structlog.get_logger("hvlab.test").debug("too detailed")
    [event] = _lines(stream)
    assert event["event"] == "step done"
    assert (event["workflow_id"], event["host"], event["vm"]) == ("wf-1", "SVR1", "Linux01")
    assert event["level"] == "info" and event["logger"] == "hvlab.test"
    assert event["timestamp"].endswith("Z")


@pytest.mark.usefixtures("restore_logging")
def test_stdlib_records_are_json_too_and_noisy_libraries_are_muted() -> None:
    """temporalio's stdlib records become JSON with context and extras; pypsrp INFO is dropped."""
    stream = io.StringIO()
    configure_logging("auto", "INFO", stream=stream)  # StringIO is not a TTY: JSON
    structlog.contextvars.bind_contextvars(workflow_id="wf-2")
    logging.getLogger("temporalio.worker").warning("poll %s failed", "x", extra={"attempt": 3})
    logging.getLogger("pypsrp.client").info("sending 4 KB of XML")
    logging.getLogger("urllib3.connectionpool").warning("retrying")
    first, second = _lines(stream)
    assert first["event"] == "poll x failed" and first["logger"] == "temporalio.worker"
    assert first["level"] == "warning" and first["workflow_id"] == "wf-2"
    assert first["attempt"] == 3
    assert second["logger"] == "urllib3.connectionpool"


@pytest.mark.usefixtures("restore_logging")
def test_reconfiguring_does_not_duplicate_lines() -> None:
    """Calling configure_logging twice replaces the handler: one line per event."""
    first, second = io.StringIO(), io.StringIO()
    configure_logging("json", "INFO", stream=first)
    configure_logging("json", "INFO", stream=second)
    structlog.get_logger().info("once")
    assert first.getvalue() == ""
    assert [e["event"] for e in _lines(second)] == ["once"]


@pytest.mark.usefixtures("restore_logging")
def test_console_format_is_not_json() -> None:
    """format=console renders readable text, not JSON."""
    stream = io.StringIO()
    configure_logging("console", "INFO", stream=stream)
    structlog.get_logger().info("hello", host="SVR2")
    text = stream.getvalue()
    assert "hello" in text and "host" in text and "SVR2" in text
    assert not text.lstrip().startswith("{")


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("fmt", ["json", "console"])
def test_tracebacks_never_show_frame_locals(fmt: str) -> None:
    """A logged exception shows its frames but not their locals: the session pool's frames
    hold the resolved credential (structlog's and Rich's defaults would print it)."""
    stream = io.StringIO()
    configure_logging(fmt, "INFO", stream=stream)

    def open_session(password: str) -> None:
        raise ConnectionError("logon failed for LAB\\hvlab-admin")

    secret = "-".join(("Pa55", "in", "a", "frame!"))  # not in the source lines shown
    try:
        open_session(secret)
    except ConnectionError:
        structlog.get_logger("hvlab.test").exception("session failed")
        logging.getLogger("temporalio.activity").exception("activity failed")
    text = stream.getvalue()
    assert "open_session" in text and "logon failed" in text
    assert secret not in text
