"""Capture every command a client sends, labelled with the operation that sent it."""

from __future__ import annotations

import contextlib
import copy
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pymongo import monitoring

from ._router import Route, RouterModel, Verdict

__all__ = ["Captured", "CommandCapture", "routing_table"]

COLUMNS = (Route.ONE, Route.FEW, Route.ALL, Route.INVALID, Route.UNSHARDED)


@dataclass(frozen=True)
class Captured:
    """One command as sent, with the operation it belongs to."""

    operation: str
    name: str
    command: dict[str, Any]


class CommandCapture(monitoring.CommandListener):
    """A PyMongo command listener that keeps what each labelled operation sends.

    Commands sent outside :meth:`operation` are not kept (connection set-up,
    the fixtures' own housekeeping).
    """

    def __init__(self) -> None:
        self.commands: list[Captured] = []
        self.label: str | None = None

    @contextlib.contextmanager
    def operation(self, label: str) -> Iterator[None]:
        """Label every command sent inside the block."""
        self.label = label
        try:
            yield
        finally:
            self.label = None

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.label is not None:
            self.commands.append(
                Captured(self.label, event.command_name, copy.deepcopy(dict(event.command)))
            )

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def verdicts(model: RouterModel, commands: list[Captured]) -> list[tuple[Captured, Verdict]]:
    """Every (command, verdict) pair, one per write statement."""
    return [(c, v) for c in commands for v in model.route(c.name, c.command)]


def routing_table(model: RouterModel, commands: list[Captured]) -> str:
    """A Markdown table: per operation, how many commands go where."""
    rows: dict[str, Counter[Route]] = defaultdict(Counter)
    for captured, verdict in verdicts(model, commands):
        rows[captured.operation][verdict.route] += 1
    header = "| operation | " + " | ".join(c.value for c in COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 1)]
    for operation, counts in rows.items():
        if not any(counts[c] for c in COLUMNS):
            continue
        cells = " | ".join(str(counts[c]) if counts[c] else "" for c in COLUMNS)
        lines.append(f"| {operation} | {cells} |")
    return "\n".join(lines)
