"""Cost at read time: a caller's price table applied to per-model token sums.

No price is ever stored with a record: prices change, differ per contract,
and a per-row price map would outweigh the row. A report takes a table
``{"gpt-4o": Price(input_per_mtok=2.5, output_per_mtok=10.0)}`` (US dollars,
or whatever currency the caller uses, per million tokens) and prices the
token sums it computed per model.

A model is found in the table by its exact name (the ``response.model`` the
provider reported), else by that name without a trailing snapshot date
(``gpt-4o-2024-08-06`` and ``claude-3-5-sonnet-20241022`` take the prices of
``gpt-4o`` and ``claude-3-5-sonnet``). No other prefix matches: ``gpt-4o-mini``
never takes the price of ``gpt-4o``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from llmreq_mongo._checks import a_type
from llmreq_mongo.errors import InvalidInput

__all__ = ["ModelTokens", "Price", "Priced", "check_prices", "price_for", "priced"]

_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")
_PER = 1_000_000


def _rate(name: str, value: Any) -> float:
    finite = False
    if not isinstance(value, bool) and isinstance(value, (int, float)):
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int beyond any float (10**400)
            finite = False
    if not finite:
        raise InvalidInput(
            f"Price.{name} must be a finite number (the price of a million tokens), "
            f"got {value!r} ({a_type(value)})"
        )
    if value < 0:
        raise InvalidInput(f"Price.{name} must be zero or more, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Price:
    """What a million tokens of one model cost (any currency, the same for the whole table).

    Attributes:
        input_per_mtok: the price of a million input tokens.
        output_per_mtok: the price of a million output tokens.

    Raises:
        InvalidInput: a rate that is not a finite number of zero or more.
    """

    input_per_mtok: float
    output_per_mtok: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_per_mtok", _rate("input_per_mtok", self.input_per_mtok))
        object.__setattr__(self, "output_per_mtok", _rate("output_per_mtok", self.output_per_mtok))


def check_prices(prices: Any) -> dict[str, Price] | None:
    """Return ``prices`` as a dict if it maps model names to :class:`Price` (or is None).

    Raises:
        InvalidInput: not a mapping, a key that is not a non-empty string, or
            a value that is not a ``Price``.
    """
    if prices is None:
        return None
    if not isinstance(prices, Mapping):
        raise InvalidInput(
            "prices must be a dict of model name to Price, such as "
            '{"gpt-4o": Price(input_per_mtok=2.5, output_per_mtok=10.0)}; '
            f"got {a_type(prices)}"
        )
    table: dict[str, Price] = {}
    for model, price in prices.items():
        if not isinstance(model, str) or not model:
            raise InvalidInput(
                f"prices keys must be model names (non-empty strings), got {model!r}"
            )
        if not isinstance(price, Price):
            raise InvalidInput(
                f"prices[{model!r}] must be a Price (from llmreq_mongo.analytics), "
                f"got {a_type(price)}"
            )
        table[model] = price
    return table


def price_for(prices: Mapping[str, Price], model: str | None) -> Price | None:
    """The price of ``model``: by its name, else by its name without a snapshot date."""
    if model is None:
        return None
    found = prices.get(model)
    if found is None:
        base = _SNAPSHOT.sub("", model)
        found = prices.get(base) if base != model else None
    return found


@dataclass(frozen=True)
class ModelTokens:
    """The token sums of one model within one report row (None: no call reported them)."""

    model: str | None
    input_tokens: int | None
    output_tokens: int | None


@dataclass(frozen=True)
class Priced:
    """The cost of a row's tokens.

    Attributes:
        cost: the cost of the tokens of the priced models; None when no
            price table was given, or no call of a priced model reported tokens.
        unpriced_models: the models whose calls reported tokens but have no
            price in the table (None for calls that named no model).
    """

    cost: float | None
    unpriced_models: tuple[str | None, ...]


def priced(prices: Mapping[str, Price] | None, models: Iterable[ModelTokens]) -> Priced:
    """Apply ``prices`` to the per-model token sums of one row."""
    if prices is None:
        return Priced(None, ())
    cost: float | None = None
    unpriced: set[str | None] = set()
    for entry in models:
        if entry.input_tokens is None and entry.output_tokens is None:
            continue
        price = price_for(prices, entry.model)
        if price is None:
            unpriced.add(entry.model)
            continue
        cost = (cost or 0.0) + (
            (entry.input_tokens or 0) * price.input_per_mtok
            + (entry.output_tokens or 0) * price.output_per_mtok
        ) / _PER
    names = sorted(m for m in unpriced if m is not None)
    return Priced(cost, (*names, *([None] if None in unpriced else [])))
