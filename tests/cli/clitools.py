"""Helpers shared by the command-line tests (seed data in the export format)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bson import ObjectId

__all__ = ["chat", "export_record", "write_jsonl"]

UTC = dt.timezone.utc


def export_record(
    *,
    created_at: dt.datetime,
    client: tuple[ObjectId, str],
    session_key: str | None = "s1",
    request: Any = None,
    is_aggregation: bool = False,
    record_id: ObjectId | None = None,
) -> dict[str, Any]:
    """One record in the export format, for seeding through ``llmreq import``."""
    stamp = created_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "id": str(record_id or ObjectId()),
        "created_at": stamp,
        "updated_at": stamp,
        "llm_client": {"id": str(client[0]), "name": client[1]},
        "session_key": session_key,
        "is_aggregation": is_aggregation,
        "request": request,
    }


def write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
    return path


def chat(*turns: tuple[str, Any], model: str = "gpt-4o") -> dict[str, Any]:
    """A chat-completion payload."""
    return {"model": model, "messages": [{"role": r, "content": c} for r, c in turns]}
