"""Logging: text or JSON lines, each carrying the request id and run id of the code that logged it.

THREADLINE_LOG_FORMAT (Settings.log_format) = json|text; unset means JSON when stderr is not a terminal (a
container, a service manager) and text on a terminal. The ids come from context variables: the HTTP middleware
sets `request_id` (the x-request-id it answers with) and the run executor sets `run_id`; tasks started while they
are set inherit them.
"""

from __future__ import annotations

import contextvars
import logging
import sys

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("run_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class ContextIds(logging.Filter):
    """Adds `request_id` and `run_id` (None when unset) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.run_id = run_id.get()
        record.__dict__.pop("color_message", None)  # uvicorn's ANSI-coloured copy of the message
        return True


def log_format(configured: str | None = None) -> str:
    """`json` or `text`: the configured format (Settings.log_format), else by whether stderr is a terminal."""
    if configured in ("json", "text"):
        return configured
    return "text" if sys.stderr.isatty() else "json"


def configure(level: int = logging.INFO, fmt: str | None = None) -> None:
    """Install one stderr handler on the root logger in format `fmt` (`json`, `text`, None: see log_format)."""
    handler = logging.StreamHandler()
    handler.addFilter(ContextIds())
    if log_format(fmt) == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                "%(levelname)s %(name)s %(message)s %(request_id)s %(run_id)s",
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp="time",  # ISO 8601, UTC
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
