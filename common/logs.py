"""Log lines an operator can search: LOG_FORMAT=json writes one JSON object a line.

Every line has `time` (UTC, ISO 8601), `level`, `service` (chat, actions or console), `logger`
and `message`; a line written while a visitor's message is handled also has `request_id`, a
random id made for that message (never derived from the conversation id) which the Rasa
server sends to the action server in the REQUEST_ID_HEADER header, so one search finds the
message's lines on both servers. Lines that close a step add `outcome` and `duration_ms`
(`log_event`). What the project logs never holds a visitor's words, name, contact or
conversation id (tests/e2e/test_e2e_booking.py reads every field); an exception adds only its
type and the file and line where it was raised, never its message or values.

LOG_FORMAT=text (the local profile's default) keeps the plain lines, with the request id after
the message when there is one.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import traceback
from datetime import datetime, timezone
from typing import Any

REQUEST_ID_HEADER = "X-Request-Id"
# A request id as this module makes them: 32 lower-case hex digits (anything else is replaced).
_REQUEST_ID = re.compile(r"[0-9a-f]{32}")
# The fields a line may add through `log_event` (anything else is dropped, never written).
EVENT_FIELDS = ("outcome", "duration_ms", "channel", "action", "status")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s  %(message)s"

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def new_request_id() -> str:
    """A fresh random request id (it says nothing about the visitor or the conversation)."""
    return secrets.token_hex(16)


def start_request(given: str | None = None) -> str:
    """Make `given` (if it is a well-formed request id) or a new id this task's request id."""
    request_id = given if given is not None and _REQUEST_ID.fullmatch(given) else new_request_id()
    _request_id.set(request_id)
    return request_id


def current_request_id() -> str | None:
    """The request id of the message being handled in this task, if any."""
    return _request_id.get()


def log_event(logger: logging.Logger, message: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log `message` with some of EVENT_FIELDS (outcome, duration_ms ...) as fields of their own."""
    logger.log(level, message, extra={"event": {k: v for k, v in fields.items() if k in EVENT_FIELDS}})


class RequestIdFilter(logging.Filter):
    """Adds the current request id to every record (None outside a message)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach `request_id` and pass the record on."""
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True


def exception_place(record: logging.LogRecord) -> str | None:
    """`Type at file:line` of a logged exception: never its message, which may hold values."""
    if not record.exc_info or record.exc_info[1] is None:
        return None
    error = record.exc_info[1]
    frames = traceback.extract_tb(error.__traceback__)[-1:]
    where = f" at {frames[0].filename}:{frames[0].lineno}" if frames else ""
    return f"{type(error).__name__}{where}"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, service, logger, message, request id and event fields."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            line["request_id"] = request_id
        line.update(getattr(record, "event", None) or {})
        error = exception_place(record)
        if error:
            line["error"] = error
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The plain format, with `[request ...]` and the event fields after the message."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        """The record as the plain line."""
        text = super().format(record)
        extras = [f"{key}={value}" for key, value in (getattr(record, "event", None) or {}).items()]
        request_id = getattr(record, "request_id", None)
        if request_id:
            extras.append(f"request={request_id}")
        return f"{text}  ({', '.join(extras)})" if extras else text


def formatter(service: str, log_format: str) -> logging.Formatter:
    """The formatter for LOG_FORMAT `log_format` ("json" or "text")."""
    return JsonFormatter(service) if log_format == "json" else TextFormatter()


def configure(service: str, log_format: str, level: int = logging.INFO) -> None:
    """Give every handler in this process (the root's, Sanic's, Rasa's) the chosen format.

    Call it once the frameworks have set up their own logging (the Rasa server: when its app
    is made; the action server and the console: before serving); a root handler on standard
    error is added if there is none.
    """
    chosen = formatter(service, log_format)
    request_ids = RequestIdFilter()
    logging.captureWarnings(log_format == "json")  # Python's warnings as log lines too
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
        root.setLevel(level)
    loggers = [root, *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict))]
    for logger in loggers:
        for handler in logger.handlers:
            handler.setFormatter(chosen)
            if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
                handler.addFilter(request_ids)
