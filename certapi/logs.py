"""The service's logs, as text lines or, with ``CERTAPI_LOG_FORMAT=json``, JSON lines.

A log line must not be forgeable by a client: a path may decode to a newline, a carriage
return, NUL, an ANSI escape or a bidi override. Text lines escape every such character
(``\\n``, ``\\x1b``, ``\\u202e``) so a record is always one line, and a traceback's lines
are indented so no line of one can pass for a record of its own; JSON lines are escaped
by the encoder (ASCII only). Bodies, headers, keys and emails are never logged.
"""
import logging
import os
import re

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

# The servers' own loggers (start-up, worker and protocol messages): in JSON mode they
# write JSON too, so a log shipper reads one format.
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "gunicorn.error")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
FORMATS = ("text", "json")

# Characters that end a line or steer a terminal: C0, DEL, C1, the Unicode line and
# paragraph separators, and the bidi controls that reorder what a reader sees.
_LINE_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# In the access line a value is one space-separated field: only visible ASCII stays as is.
_FIELD_UNSAFE = re.compile(r"[^!-\[\]-~]")


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    return "\\x20" if char == " " else char.encode("unicode_escape").decode("ascii")


def escape_line(text: str) -> str:
    """``text`` with nothing that could end the line or rewrite what a terminal shows."""
    return _LINE_UNSAFE.sub(_escaped, text)


def escape_field(text: str) -> str:
    """``text`` as one field of a space-separated line: visible ASCII, the rest escaped."""
    return _FIELD_UNSAFE.sub(_escaped, text)


class TextFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        return escape_line(super().formatMessage(record))

    def formatException(self, ei: object) -> str:  # noqa: N802
        text = super().formatException(ei)  # type: ignore[arg-type]
        return "\n".join("    " + escape_line(line) for line in text.splitlines())

    def formatStack(self, stack_info: str) -> str:  # noqa: N802
        return "\n".join("    " + escape_line(line) for line in stack_info.splitlines())


def log_format() -> str:
    """``CERTAPI_LOG_FORMAT``: ``text`` (the default) or ``json``."""
    chosen = (os.environ.get("CERTAPI_LOG_FORMAT") or "text").strip().lower()
    if chosen not in FORMATS:
        raise ValueError(f"CERTAPI_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {chosen!r}")
    return chosen


def formatter(kind: str) -> logging.Formatter:
    if kind == "json":
        # One object per line: time, level, logger, message, the record's extra fields
        # (the access log's request_id, method, path, status...) and a traceback as a string.
        return JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                             rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                             json_ensure_ascii=True,
                             # uvicorn's copy of its message with terminal colours
                             reserved_attrs=[*RESERVED_ATTRS, "color_message"])
    return TextFormatter(TEXT_FORMAT)


def configure(kind: str | None = None) -> None:
    """The access and error logs go to stderr unless the host process set up logging; in
    JSON mode the servers' own lines become JSON too."""
    kind = kind or log_format()
    chosen = formatter(kind)
    logger = logging.getLogger("certapi")
    if not logger.handlers:
        stream = logging.StreamHandler()
        stream.setFormatter(chosen)
        logger.addHandler(stream)
        logger.setLevel(logging.INFO)
    if kind != "json":
        return
    for name in SERVER_LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setFormatter(chosen)
