"""How the CLI prints: aligned tables and relative times for people on a terminal, JSON for
scripts (``--json``, or whenever stdout is not a terminal), one style for every command."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

Render = Callable[["Output", Any], None]

_STYLES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "blue": "34", "cyan": "36"}
# Job and worker states a reader scans for: the rest stays plain.
STATUS_STYLE = {
    "DONE": "green",
    "RUNNING": "cyan",
    "PENDING": "blue",
    "SCHEDULED": "blue",
    "FAILED": "yellow",
    "DEAD": "red",
    "CANCELLED": "dim",
    "paused": "yellow",
}


def wants_json(choice: str | None, stream: TextIO) -> bool:
    """``--json``/``--human`` (or GOTASKQ_OUTPUT) if given, else JSON unless ``stream`` is a terminal."""
    if choice is None:
        choice = os.environ.get("GOTASKQ_OUTPUT", "").strip().lower() or None
    if choice in ("json", "human"):
        return choice == "json"
    return not _isatty(stream)


def wants_color(stream: TextIO) -> bool:
    """Colours only on a terminal, and never with NO_COLOR (https://no-color.org) or TERM=dumb."""
    return _isatty(stream) and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


@dataclass
class Output:
    """Where a command's answer goes: ``emit(body, render)`` prints JSON or calls ``render``."""

    json: bool
    color: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    now: float = field(default_factory=time.time)

    @classmethod
    def for_choice(cls, choice: str | None) -> Output:
        return cls(json=wants_json(choice, sys.stdout), color=wants_color(sys.stdout))

    def emit(self, body: Any, render: Render | None = None) -> None:
        if self.json or render is None:
            self.print(json.dumps(body, indent=2))
        else:
            render(self, body)

    def print(self, text: str = "") -> None:
        print(text, file=self.out)

    def style(self, text: str, *names: str) -> str:
        codes = ";".join(_STYLES[n] for n in names if n in _STYLES)
        return f"\x1b[{codes}m{text}\x1b[0m" if self.color and codes and text else text

    def status(self, text: str) -> str:
        return self.style(text, STATUS_STYLE.get(text, ""))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[int] = ()) -> None:
        """Aligned columns; ``right`` lists the column indexes aligned right (numbers)."""
        if not rows:
            self.print(self.style("(none)", "dim"))
            return
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

        def line(cells: Sequence[str], styled: Callable[[int, str], str]) -> str:
            parts = []
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True)):
                pad = " " * (width - len(cell))
                parts.append(pad + styled(i, cell) if i in right else styled(i, cell) + pad)
            return "  ".join(parts).rstrip()

        self.print(line(headers, lambda _, c: self.style(c, "bold")))
        for row in rows:
            self.print(line(row, lambda _, c: self.status(c)))

    def fields(self, pairs: Sequence[tuple[str, str]]) -> None:
        """``key  value`` lines, keys aligned: one record (a job, a queue)."""
        width = max((len(k) for k, _ in pairs), default=0)
        for key, value in pairs:
            self.print(f"{self.style(key.ljust(width), 'bold')}  {self.status(value)}")

    def when(self, iso: str | None) -> str:
        """``3 min ago`` / ``in 5 s`` for an RFC 3339 time; ``-`` for none."""
        return relative(iso, self.now)


def relative(iso: str | None, now: float) -> str:
    if not iso:
        return "-"
    try:
        at = datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return iso
    delta = now - at
    span = abs(delta)
    if span < 1:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if span >= size:
            amount = f"{int(span // size)} {unit}"
            return f"{amount} ago" if delta > 0 else f"in {amount}"
    return iso  # pragma: no cover - the loop ends at 1 s


def seconds(value: float) -> str:
    """A duration as the environment writes one: 250ms, 90s, 5m, 1h."""
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if value >= size and value % size == 0:
            return f"{value / size:g}{unit}"
    return f"{value:g}s" if value >= 1 else f"{value * 1000:g}ms"


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def cut(text: Any, width: int = 60) -> str:
    """One line of at most ``width`` characters (error messages, payloads)."""
    s = "-" if text is None else (text if isinstance(text, str) else json.dumps(text))
    s = " ".join(s.split())
    return s if len(s) <= width else s[: width - 1] + "…"


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, total: int | None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total = total
        self.on = _isatty(self.stream)
        self._drawn_at = 0.0

    def update(self, done: int, *, force: bool = False) -> None:
        if not self.on:
            return
        now = time.monotonic()
        if not force and now - self._drawn_at < 0.1:
            return
        self._drawn_at = now
        if self.total:
            share = min(1.0, done / self.total)
            bar = ("#" * int(share * 30)).ljust(30, ".")
            text = f"\r[{bar}] {done}/{self.total} jobs"
        else:
            text = f"\r{done} jobs sent"
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        if self.on:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
