"""What the reports add up about responses: tokens, errors, and the model.

A token sum must tell "nothing reported" from "zero tokens". ``$sum`` cannot:
over values that are all missing or null it gives 0, on MongoDB as on the
embedded engine. So each sum travels with the number of calls that
reported the count (``$isNumber``), and a sum over no reporting call reads
as None (see :func:`tokens`).

A call is an error when its response has an ``error`` or an HTTP status of
400 or more. A record without a response (a request recorded alone) is
neither an error nor a reporting call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .prices import ModelTokens

__all__ = [
    "ERROR",
    "MODEL",
    "TOKEN_FIELDS",
    "call_sums",
    "model_entry",
    "model_tokens",
    "regrouped_sums",
    "reported",
    "tokens",
]

#: The model the provider said answered (missing or null when it said none).
MODEL = "$response.model"

#: The usage counts the reports sum, and the short names their sums use in pipelines.
TOKEN_FIELDS = {"input_tokens": "i", "output_tokens": "o"}

#: 1 for a call that failed (an ``error``, or a status of 400 or more), else 0.
ERROR: dict[str, Any] = {
    "$cond": [
        {
            "$or": [
                {"$ne": [{"$ifNull": ["$response.error", None]}, None]},
                {"$gte": [{"$ifNull": ["$response.status", 0]}, 400]},
            ]
        },
        1,
        0,
    ]
}


def reported(field: str) -> dict[str, Any]:
    """1 for a call whose response reported the usage count ``field``, else 0."""
    return {"$cond": [{"$isNumber": f"$response.usage.{field}"}, 1, 0]}


def call_sums() -> dict[str, Any]:
    """``$group`` accumulators over raw records: errors, and each token sum with its count.

    For each field of :data:`TOKEN_FIELDS` (short name ``x``): ``x`` is the
    sum and ``x_n`` how many calls reported it.
    """
    sums: dict[str, Any] = {"errors": {"$sum": ERROR}}
    for field, short in TOKEN_FIELDS.items():
        sums[short] = {"$sum": f"$response.usage.{field}"}
        sums[f"{short}_n"] = {"$sum": reported(field)}
    return sums


def regrouped_sums() -> dict[str, Any]:
    """``$group`` accumulators adding up the rows :func:`call_sums` made."""
    names = ["errors", *(n for s in TOKEN_FIELDS.values() for n in (s, f"{s}_n"))]
    return {name: {"$sum": f"${name}"} for name in names}


def model_entry() -> dict[str, Any]:
    """One row's per-model sums, to ``$push`` into the row a coarser ``$group`` makes
    (the row's ``_id`` holds the model as ``m``)."""
    entry: dict[str, Any] = {"m": "$_id.m"}
    for short in TOKEN_FIELDS.values():
        entry[short] = f"${short}"
        entry[f"{short}_n"] = f"${short}_n"
    return entry


def tokens(row: Mapping[str, Any], field: str) -> int | None:
    """The sum of usage count ``field`` in ``row``: None when no call reported it."""
    short = TOKEN_FIELDS[field]
    if not row.get(f"{short}_n"):
        return None
    return int(row.get(short) or 0)


def model_tokens(entries: Iterable[Mapping[str, Any]]) -> list[ModelTokens]:
    """The per-model sums :func:`model_entry` pushed, read back."""
    out = []
    for entry in entries:
        model = entry.get("m")
        out.append(
            ModelTokens(
                model=model if isinstance(model, str) else None,
                input_tokens=tokens(entry, "input_tokens"),
                output_tokens=tokens(entry, "output_tokens"),
            )
        )
    return out
