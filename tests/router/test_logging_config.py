"""Process logs as JSON lines or text (router/logging_config.py)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

from router.logging_config import formatter

ROOT = Path(__file__).resolve().parents[2]
RFC3339_UTC_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    """A WARNING record of logger ``consumers.pipeline`` with ``extra`` fields, no exception."""
    logger = logging.getLogger("consumers.pipeline")
    return logger.makeRecord(
        logger.name, logging.WARNING, __file__, 1, message, args, None, extra=extra
    )


def failing_record() -> logging.LogRecord:
    """A record carrying the exception being handled, as ``log.exception`` makes."""
    try:
        raise ValueError("broken\nacross lines")
    except ValueError:
        made = record("processing %s failed", "evt_1", webhook_id="wh_1")
        made.exc_info = sys.exc_info()
        return made


def test_a_record_is_one_json_object_with_its_fields_extra_and_traceback() -> None:
    # Given a record with extra fields and an exception
    made = failing_record()
    # When it is formatted as JSON
    line = formatter("json").format(made)
    # Then it is one line holding one JSON object
    assert "\n" not in line
    data = json.loads(line)
    # With the time, level, logger and the message with its arguments
    assert RFC3339_UTC_MS.match(data["time"]), data["time"]
    assert data["level"] == "WARNING"
    assert data["logger"] == "consumers.pipeline"
    assert data["message"] == "processing evt_1 failed"
    # And the extra fields as top-level keys, and the formatted traceback
    assert data["webhook_id"] == "wh_1"
    assert data["exc_info"].startswith("Traceback (most recent call last):")
    assert data["exc_info"].endswith("ValueError: broken\nacross lines")
    # And none of the record's own attributes
    assert not {"args", "msg", "levelno", "pathname", "created", "asctime"} & data.keys()


def test_the_time_is_rfc3339_in_utc_with_milliseconds() -> None:
    # Given a record made at a known instant
    made = record("tick")
    made.created = 1_798_000_000.1234  # 2026-12-23T04:26:40.123Z
    made.msecs = 123.0
    # When it is formatted as JSON
    data = json.loads(formatter("json").format(made))
    # Then its time is that instant in UTC, to the millisecond
    assert data["time"] == "2026-12-23T04:26:40.123Z"


def test_values_json_cannot_hold_are_written_as_text() -> None:
    # Given extra fields that are not JSON types, and uvicorn's coloured copy of a message
    made = record("started", path=Path("/tmp/x"), color_message="\x1b[1mstarted\x1b[0m")
    # When it is formatted as JSON
    data = json.loads(formatter("json").format(made))
    # Then the path is its text, and the coloured copy is left out
    assert data["path"] == "/tmp/x"
    assert "color_message" not in data


def test_text_keeps_the_human_format() -> None:
    # Given a record with an extra field
    made = record("queue %s drained", "webhook.wh_1", webhook_id="wh_1")
    # When it is formatted as text
    line = formatter("text").format(made)
    # Then it is the local time, level, logger and message, without the extra fields
    timestamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    expected = " WARNING consumers.pipeline: queue webhook.wh_1 drained"
    assert re.fullmatch(timestamp + re.escape(expected), line), line


def test_warnings_and_uncaught_exceptions_are_json_lines_too() -> None:
    # Given a process that logs through configure_logging in JSON
    script = (
        "import logging, warnings\n"
        "from router.logging_config import configure_logging\n"
        "configure_logging('INFO', 'json')\n"
        "logging.getLogger('httpx').info('HTTP Request: POST https://example.com/tok')\n"
        "logging.getLogger('consumers.worker').info('consuming')\n"
        "warnings.warn('deprecated thing')\n"
        "import threading\n"
        "thread = threading.Thread(target=lambda: 1 / 0, name='log-purge')\n"
        "thread.start(); thread.join()\n"
        "raise RuntimeError('fell over')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # When it logs, warns, loses a thread and dies of an uncaught exception
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    # Then every line of its stderr is a JSON object, httpx's INFO chatter left out
    assert done.returncode == 1
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(line["logger"], line["level"]) for line in lines] == [
        ("consumers.worker", "INFO"),
        ("py.warnings", "WARNING"),
        ("webhook-router", "CRITICAL"),
        ("webhook-router", "CRITICAL"),
    ]
    assert "deprecated thing" in lines[1]["message"]
    assert lines[2]["message"] == "uncaught exception in thread log-purge"
    assert lines[2]["exc_info"].endswith("ZeroDivisionError: division by zero")
    assert lines[3]["exc_info"].endswith("RuntimeError: fell over")


def test_router_log_format_text_gives_text_lines(tmp_path: Path) -> None:
    # Given a CLI command run with ROUTER_LOG_FORMAT=text
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ROUTER_DATABASE_URL": f"sqlite:///{tmp_path / 'router.db'}",
        "ROUTER_LOG_FORMAT": "text",
    }
    # When it logs
    done = subprocess.run(
        [sys.executable, "-m", "router.cli", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # Then its lines are the human format, not JSON
    lines = done.stderr.splitlines()
    assert lines
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \S+: ", x) for x in lines)
