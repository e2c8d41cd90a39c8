"""A node's logs: stdlib `logging`, one line per event, plain text or JSON lines.

Every module logs through its own `logging.getLogger(__name__)` and passes the event's
facts as `extra={...}`: `_log.info("committed", extra={"height": 12, "round": 0})`. Only
the process that runs a node (`gridtokenx node start`) calls `configure`, so a library
user, a test or the demo's in-process observer keeps its own logging untouched.

Both formats come from one function, `fields`, so a plain line and a JSON line of the same
event carry the same keys: `ts` (UTC, milliseconds), `level`, `logger` (the module, without
the `gridtokenx.` prefix), `msg`, then the event's own fields in the order given, and
`error` with the traceback when one was logged. Plain text is for a person reading a
terminal or `journalctl`; JSON lines are for a log shipper (Loki, Elasticsearch, Vector).

The logs go to stdout. A supervisor takes either stream (systemd sends both to the
journal, Docker and Kubernetes keep both), so the choice is about the command line's
contract: stderr carries the one `error: CODE: message` line a script reads to learn why
`node start` exited (cli/errors.py), and nothing else, so a failure is never buried in
routine lines. At the default level nothing is logged before the node is up, so a node
that cannot start still prints only that line.

Repetitive events (refused connections, dropped frames) are not logged one by one: the
node counts them (`p2p`) and `Digest` turns the counts into one line per reason per
period, with the number seen.
"""

from __future__ import annotations

import datetime
import logging
import sys
from collections.abc import Mapping
from typing import IO, Any, Final

import orjson

FORMATS: Final = ("plain", "json")
LEVELS: Final = ("debug", "info", "warning", "error")
ROOT: Final = "gridtokenx"
# Attributes every LogRecord has: whatever else a record carries came from `extra`.
_STANDARD: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def problem(log_format: str, level: str) -> str | None:
    """Why the config's log_format or log_level cannot be used (None: both can)."""
    if log_format not in FORMATS:
        return f"log_format {log_format!r} is not one of {', '.join(FORMATS)}"
    if level.lower() not in LEVELS:
        return f"log_level {level!r} is not one of {', '.join(LEVELS)}"
    return None


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The one description of a record that both formats print."""
    stamp = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
    name = record.name.removeprefix(f"{ROOT}.")
    out: dict[str, Any] = {
        "ts": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": record.levelname.lower(),
        "logger": name,
        "msg": record.getMessage(),
    }
    for key, value in record.__dict__.items():
        if key not in _STANDARD and not key.startswith("_"):
            out[key] = value.hex() if isinstance(value, bytes) else value
    if record.exc_info and record.exc_info[0] is not None:
        out["error"] = logging.Formatter().formatException(record.exc_info)
    return out


def _plain_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and value and not any(c in value for c in ' ="\n\t'):
        return value
    return orjson.dumps(value, default=str).decode()


class PlainFormatter(logging.Formatter):
    """`ts LEVEL logger: msg key=value ...`; a traceback follows on its own lines."""

    def format(self, record: logging.LogRecord) -> str:
        data = fields(record)
        error = data.pop("error", None)
        head = f"{data.pop('ts')} {data.pop('level').upper():<5} {data.pop('logger')}: "
        line = head + data.pop("msg")
        if data:
            line += " " + " ".join(f"{k}={_plain_value(v)}" for k, v in data.items())
        return line if error is None else f"{line}\n{error}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line (orjson; values it cannot encode are written as text)."""

    def format(self, record: logging.LogRecord) -> str:
        return orjson.dumps(fields(record), default=str).decode()


def configure(
    log_format: str = "plain", level: str = "info", stream: IO[str] | None = None
) -> None:
    """Send every log record to `stream` (stdout) in `log_format`: the node's own loggers
    at `level`, other libraries' (uvicorn, asyncio) from warnings up. Replaces what an
    earlier call installed. Raises ValueError for an unknown format or level."""
    if (reason := problem(log_format, level)) is not None:
        raise ValueError(reason)
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter() if log_format == "json" else PlainFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger(ROOT).setLevel(level.upper())
    logging.captureWarnings(True)


class Digest:
    """Counts that grow with misbehaviour (connections refused by reason, frames dropped
    by lane and reason), turned into at most one log line per key every `every_s` seconds,
    with how many were seen since the key's last line: a flood of 10,000 refused
    handshakes is a handful of lines, and a quiet period none. A key is a tuple of values
    for the fields `names`."""

    def __init__(
        self,
        logger: logging.Logger,
        message: str,
        names: tuple[str, ...],
        level: int = logging.INFO,
        every_s: float = 10.0,
    ) -> None:
        self.logger, self.message, self.names = logger, message, names
        self.level, self.every_s = level, every_s
        self._logged: dict[tuple[str, ...], int] = {}  # each key's count at its last line
        self._last: dict[tuple[str, ...], float] = {}

    def update(self, counts: Mapping[tuple[str, ...], int], now: float) -> int:
        """Log the keys whose count grew, unless logged less than `every_s` ago; returns
        the number of lines written."""
        lines = 0
        for key, count in sorted(counts.items()):
            seen = count - self._logged.get(key, 0)
            last = self._last.get(key)
            if seen <= 0 or (last is not None and now - last < self.every_s):
                continue
            self._logged[key], self._last[key] = count, now
            extra: dict[str, object] = dict(zip(self.names, key, strict=True))
            extra.update(count=seen, total=count)
            if last is not None:
                extra["window_s"] = round(now - last, 1)
            self.logger.log(self.level, self.message, extra=extra)
            lines += 1
        return lines
