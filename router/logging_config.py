"""Process logs: every command writes its records to stderr, as JSON lines or as text.

JSON lines are for log pipelines (one object per record: ``time``, ``level``, ``logger``,
``message``, the record's ``extra`` fields, ``exc_info``); text is for a terminal.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from types import TracebackType
from typing import Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["json", "text"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
_JSON_NAMES = {"asctime": "time", "levelname": "level", "name": "logger"}
# uvicorn repeats some messages with ANSI colours in ``color_message``: noise in a JSON line.
_NOT_EXTRA = [*RESERVED_ATTRS, "color_message"]
# pika narrates every connection step and httpx every request (with its URL) at INFO;
# alembic lists each plugin it loads on every `db upgrade`.
_CHATTY = ("pika", "httpx", "alembic.runtime.plugins")


class _JsonFormatter(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # RFC 3339 in UTC with milliseconds (2026-11-27T18:00:00.123Z): sortable, and the
        # same in every process whatever the host's time zone.
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{seconds}.{int(record.msecs):03d}Z"


def formatter(log_format: LogFormat) -> logging.Formatter:
    """The formatter of ``log_format``: one JSON object per record, or the text line."""
    if log_format == "text":
        return logging.Formatter(TEXT_FORMAT)
    return _JsonFormatter(_JSON_FIELDS, rename_fields=_JSON_NAMES, reserved_attrs=_NOT_EXTRA)


def configure_logging(level: str, log_format: LogFormat) -> None:
    """Send every record of the process to stderr at ``level``, in ``log_format``.

    Like ``logging.basicConfig``, it leaves a root logger that already has handlers alone
    (a program embedding the CLI, or pytest). In JSON, warnings and uncaught exceptions go
    through the same handler, so that every line of stderr parses.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    logging.basicConfig(level=level, handlers=[handler])
    if log_format == "json" and handler in logging.root.handlers:
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread
    for chatty in _CHATTY:
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.root.level))


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException, traceback: TracebackType | None
) -> None:
    logging.getLogger("webhook-router").critical(
        "uncaught exception", exc_info=(exc_type, exc, traceback)
    )


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    # A thread dying (the supervisor's, the log purge's) must not print a plain traceback
    # into a stream of JSON lines.
    if args.exc_type is SystemExit:
        return
    thread = args.thread.name if args.thread is not None else "?"
    logging.getLogger("webhook-router").critical(
        "uncaught exception in thread %s",
        thread,
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
    )
