"""Argument checks shared by every public entry point.

Each check returns the value it accepts (converted where that is its job) or
raises :class:`~llmreq_mongo.errors.InvalidInput` with a message naming the
argument, what it got, and what to pass instead. Writing each rule once is
what makes the same mistake get the same error everywhere: ``True`` is not an
integer here, whatever Python says, and a client given to a write must be
saved.
"""

from __future__ import annotations

import datetime as dt
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, overload

from beanie import Link
from bson import ObjectId

from llmreq_mongo._time import check_aware
from llmreq_mongo.errors import InvalidInput

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MAX_SESSION_KEY",
    "a_type",
    "check_bool",
    "check_callback",
    "check_choice",
    "check_count",
    "check_int",
    "check_seconds",
    "check_session_key",
    "check_storable",
    "check_text",
    "check_timestamps",
    "check_window",
    "client_ref",
    "key_fits_a_path",
]

#: The longest session key the library stores (the reference's ``max_length``).
MAX_SESSION_KEY = 255
#: The range of BSON's 64-bit integers: what a stored int, a skip or a limit can be.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C")


def a_type(value: object) -> str:
    """The type of ``value`` with its article, for messages: ``"an int"``, ``"None"``."""
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{_article(name)} {name}"


def _article(word: str) -> str:
    # By the sound of the first letter: "an int", "a str", and "an LLMClient",
    # whose leading capitals are spelt out letter by letter.
    if word[:2].isupper():
        return "an" if word[0] in "AEFHILMNORSX" else "a"
    return "an" if word[:1].lower() in "aeiou" else "a"


def check_text(name: str, value: str) -> str:
    """Return ``value`` if it encodes to UTF-8, as every string BSON stores must.

    A lone surrogate (``"\\ud800"``) is a valid Python string that no UTF-8
    encoder accepts: refused here, it cannot fail later inside the driver.
    """
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            f"{name} is not valid Unicode: a lone surrogate ({value[exc.start]!r}) at position "
            f"{exc.start}; pass text that encodes to UTF-8"
        ) from None
    return value


def check_storable(name: str, value: Any) -> None:
    """Refuse the strings inside ``value`` (a field's value) that BSON cannot encode.

    Walks dicts, lists and tuples: every string must encode to UTF-8, and a
    key may not hold NUL either. Other types are left to the field's own
    validation.
    """
    if isinstance(value, str):
        check_text(name, value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str):
                if "\x00" in key:
                    raise InvalidInput(
                        f"{name} has a key containing NUL ({key!r}), which BSON cannot store"
                    )
                check_text(f"a key of {name}", key)
            check_storable(f"{name}[{key!r}]", item)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_storable(f"{name}[{index}]", item)


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is ``True`` or ``False`` (not 0, 1 or None)."""
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be True or False, got {a_type(value)}")
    return value


def check_int(name: str, value: Any, *, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``value`` if it is an ``int`` (never a ``bool``) in ``minimum..maximum``."""
    positive = minimum == 1 and maximum is None
    if isinstance(value, bool) or not isinstance(value, int):
        kind = "a positive integer" if positive else "an integer"
        plain = value is None or isinstance(value, (bool, float, str))
        got = repr(value) if plain else a_type(value)
        raise InvalidInput(f"{name} must be {kind}, got {got}")
    if value < minimum or (maximum is not None and value > maximum):
        if positive:
            wanted = "a positive integer"
        elif maximum is None:
            wanted = f"at least {minimum:,}"
        else:
            wanted = f"between {minimum:,} and {maximum:,}"
        raise InvalidInput(f"{name} must be {wanted}, got {value}")
    return value


def check_count(name: str, value: Any, *, maximum: int) -> int:
    """Return ``value`` if it is an int in ``1..maximum`` (booleans refused)."""
    return check_int(name, value, minimum=1, maximum=maximum)


def check_seconds(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float if it is a finite, positive number of seconds."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        least = "zero or more" if allow_zero else "more than zero"
        raise InvalidInput(f"{name} must be a finite number of seconds, {least}; got {value!r}")
    return float(value)


def check_choice(name: str, value: Any, choices: tuple[C, ...]) -> C:
    """Return ``value`` if it is one of ``choices`` (of the same type: ``1`` is not ``True``)."""
    for choice in choices:
        if value == choice and type(value) is type(choice):
            return choice
    listed = ", ".join(repr(c) for c in choices)
    raise InvalidInput(f"{name} must be one of {listed}; got {value!r}")


def check_callback(name: str, value: F | None) -> F | None:
    """Return ``value`` if it is a plain (not ``async``) callable, or None.

    The recorder calls its hooks where it cannot wait, and never awaits what
    they return: an ``async def`` hook would never run, so it is refused.
    """
    if value is not None and not callable(value):
        raise InvalidInput(f"{name} must be a function or None, got {a_type(value)}")
    if inspect.iscoroutinefunction(value) or inspect.iscoroutinefunction(
        getattr(value, "__call__", None)  # noqa: B004 (an object with an async __call__)
    ):
        raise InvalidInput(
            f"{name} must be a plain function, not an async one: the recorder calls it "
            "without awaiting it, so its body would never run; schedule async work "
            "from a plain function (asyncio.get_running_loop().create_task(...))"
        )
    return value


@overload
def check_session_key(value: Any, *, nullable: Literal[False]) -> str: ...
@overload
def check_session_key(value: Any, *, nullable: bool = True) -> str | None: ...
def check_session_key(value: Any, *, nullable: bool = True) -> str | None:
    """Refuse anything but a string of at most 255 characters (or None when ``nullable``)."""
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise InvalidInput(
            f"session_key must be a string{' or None' if nullable else ''}, got "
            f"{a_type(value)}; a session key is never a query"
        )
    if len(value) > MAX_SESSION_KEY:
        raise InvalidInput(
            f"session_key is {len(value)} characters long; at most {MAX_SESSION_KEY} are allowed"
        )
    return check_text("session_key", value)


def key_fits_a_path(key: str) -> bool:
    """Whether a session key, percent-encoded, can travel as one segment of a URL's path.

    ``.`` and ``..`` cannot: a client resolves them away, escaped or not. Nor
    can a key holding a newline: a route's path pattern (Starlette's ``path``
    convertor) stops at it. The pages and the history API put these in the query.
    """
    return key not in (".", "..") and "\n" not in key


def check_window(since: Any, until: Any) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Check an optional ``[since, until)`` window of aware datetimes.

    Raises:
        InvalidInput: a bound is not an aware datetime, or ``since >= until``.
    """
    start = check_aware("since", since)
    end = check_aware("until", until)
    if start is not None and end is not None and start >= end:
        raise InvalidInput(
            f"since ({start.isoformat()}) must be before until ({end.isoformat()}); "
            "the window is [since, until)"
        )
    return start, end


def check_timestamps(
    created_at: Any, updated_at: Any
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Check the times a backfilled record is stored with (``created_at=``, ``updated_at=``).

    Both are aware datetimes (UTC, truncated to milliseconds, as BSON keeps
    them) or None. ``updated_at`` defaults to ``created_at``; it may only be
    given with ``created_at``, and never before it.

    Raises:
        InvalidInput: a naive or out-of-range datetime, another type,
            ``updated_at`` alone, or ``updated_at`` before ``created_at``.
    """
    created = check_aware("created_at", created_at)
    updated = check_aware("updated_at", updated_at)
    if created is None:
        if updated is not None:
            raise InvalidInput(
                "updated_at was given without created_at; give both (a backfill), or neither "
                "and the library stamps them"
            )
        return None, None
    if updated is None:
        return created, created
    if updated < created:
        raise InvalidInput(
            f"updated_at ({updated.isoformat()}) is before created_at ({created.isoformat()})"
        )
    return created, updated


#: The collection of each document class, by class: asked of Beanie once, as
#: it is the same for every record of a client (the write path's hot loop).
_COLLECTIONS: dict[type[Any], str] = {}


#: The last client id converted, and what it became: a client's records then
#: share one ObjectId, which the recorder's writer tells apart by identity.
_LAST_ID: tuple[Any, ObjectId | None] = (None, None)


def _object_id(value: Any) -> ObjectId:
    """``value`` (an ObjectId or Beanie's ``PydanticObjectId``) as a plain ObjectId."""
    global _LAST_ID
    if type(value) is ObjectId:
        return value
    last, converted = _LAST_ID
    if value is last and converted is not None:
        return converted
    converted = ObjectId(value)
    _LAST_ID = (value, converted)  # one assignment: threads see either pair whole
    return converted


def _collection_of(model: type[Any]) -> str:
    name = _COLLECTIONS.get(model)
    if name is None:
        name = _COLLECTIONS[model] = model.get_collection_name()
    return name


@overload
def client_ref(
    value: Any, *, model: type[Any], write: Literal[True], name: str = ...
) -> tuple[ObjectId, str]: ...
@overload
def client_ref(
    value: Any, *, model: type[Any], write: Literal[False] = ..., name: str = ...
) -> ObjectId | None: ...
def client_ref(
    value: Any, *, model: type[Any], write: bool = False, name: str = "llm_client"
) -> ObjectId | tuple[ObjectId, str] | None:
    """The client named by ``value``: a saved ``model`` instance, a link to one, or an id.

    The one place where "a client" is turned into an id, for writes and for
    queries alike. The differences are deliberate and are the parameters:

    Args:
        value: the client as the caller gave it.
        model: the client document class (``LLMClient``); instances and links
            to other classes are refused.
        write: a write stores a link, so it needs a saved client or a link to
            one, and returns ``(id, collection)``; a query also takes an
            ``ObjectId``, a 24-character hex id or None, and returns the id
            (or None).
        name: the argument's name, for messages.

    Raises:
        InvalidInput: another type, an unsaved client, or a malformed hex id.
    """
    # The exact class first: isinstance() on a document class runs ABCMeta's
    # check, in Python, on every record.
    if type(value) is model or isinstance(value, model):
        client_id = value.id
        if client_id is None:
            raise InvalidInput(
                f"{name} is an unsaved {model.__name__} ({getattr(value, 'name', None)!r}); "
                f"save it first (await {model.__name__}.objects.create(...))"
            )
        found: tuple[ObjectId, str | None] = (_object_id(client_id), _collection_of(type(value)))
    elif isinstance(value, Link) and issubclass(value.document_class, model):
        found = (ObjectId(value.ref.id), value.ref.collection)
    elif write:
        if value is None:
            raise InvalidInput(
                f"{name} is required: pass the {model.__name__} that handled the request"
            )
        raise InvalidInput(
            f"{name} must be a saved {model.__name__} or a link to one, got {a_type(value)}"
        )
    elif value is None:
        return None
    elif isinstance(value, ObjectId):
        found = (value, None)
    elif isinstance(value, str) and ObjectId.is_valid(value):
        found = (ObjectId(value), None)
    else:
        got = f"{value!r}, not a 24-character hex id" if isinstance(value, str) else a_type(value)
        raise InvalidInput(
            f"{name} must be {_article(model.__name__)} {model.__name__} document, a link to "
            f"it, an ObjectId or a 24-character hex id; got {got}"
        )
    client_id, collection = found
    if write:
        assert collection is not None  # an instance or a link names its collection
        return client_id, collection
    return client_id
