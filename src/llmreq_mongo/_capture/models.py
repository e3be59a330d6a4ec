"""What came back from a call: :class:`LLMResponse` and its :class:`TokenUsage`.

Both are pydantic models that refuse unknown fields and values of the wrong
kind (``strict``: ``"5"`` is not a count, ``True`` is not a status). A token
count the provider did not report is ``None``, never 0, so that a sum over
calls can tell "nothing reported" from "zero tokens".

The body is checked exactly as a record's ``request`` is (JSON only, keys
escaped when stored); a refusal is an :class:`~llmreq_mongo.errors.InvalidPayload`
whose message names the place in ``response.body``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from llmreq_mongo._checks import INT64_MAX, a_type
from llmreq_mongo._queries import checked_payload, normalize_payload, vouch, vouched
from llmreq_mongo._time import UTC, aware_utc, now_ms, to_utc_ms
from llmreq_mongo.errors import InvalidInput, InvalidPayload

__all__ = [
    "DecodedBody",
    "LLMResponse",
    "TokenUsage",
    "has_plain_body",
    "is_count",
    "response_from",
    "trusted_usage",
    "vouched_response",
]

#: A token count: a non-negative integer, or None when it was not reported.
Count = Annotated[StrictInt, Field(ge=0, le=INT64_MAX)] | None
#: A duration in milliseconds.
Millis = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Checked(BaseModel):
    """A model whose refusals, on construction and on assignment, are ``InvalidInput``."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)
    #: How messages name the model's fields.
    _root: ClassVar[str] = ""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _refusal(self._root, exc) from None

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            raise _refusal(self._root, exc) from None


class TokenUsage(_Checked):
    """The tokens one call used, named after OpenTelemetry's ``gen_ai.usage.*``.

    Every count is the provider's own figure, or None when it reported none.
    ``input_tokens`` includes the cached input (as
    ``gen_ai.usage.input_tokens`` does), so ``cache_read_input_tokens`` and
    ``cache_creation_input_tokens`` are parts of it, and
    ``reasoning_output_tokens`` is part of ``output_tokens``.

    Attributes:
        input_tokens: ``gen_ai.usage.input_tokens``, cached input included.
        output_tokens: ``gen_ai.usage.output_tokens``, reasoning included.
        total_tokens: input plus output, as the provider reported it (or, for
            Anthropic, which reports no total, their sum).
        cache_read_input_tokens: ``gen_ai.usage.cache_read.input_tokens``.
        cache_creation_input_tokens: ``gen_ai.usage.cache_creation.input_tokens``.
        reasoning_output_tokens: ``gen_ai.usage.reasoning.output_tokens``.
    """

    _root: ClassVar[str] = "usage"

    input_tokens: Count = None
    output_tokens: Count = None
    total_tokens: Count = None
    cache_read_input_tokens: Count = None
    cache_creation_input_tokens: Count = None
    reasoning_output_tokens: Count = None


class LLMResponse(_Checked):
    """The response to one call, as the client received it.

    Attributes:
        status: the HTTP status, when the call went over HTTP.
        body: the response JSON; for a stream, the assembled equivalent of
            the non-streamed response. None when there was none or it was
            not kept (``truncated``).
        model: the model the provider says answered.
        response_id: the provider's id for the response, kept as data (it is
            never a key: providers reuse ids).
        finish_reasons: why generation stopped, one per choice.
        usage: the tokens used, or None when the provider reported none.
        error: what went wrong when there is no usable response.
        stream: whether the response was streamed.
        latency_ms: from the request's arrival to the last byte of the response.
        ttft_ms: from the request's arrival to the first body byte of a stream.
        completed_at: when the response ended (aware UTC, milliseconds).
        truncated: the body was larger than the capture limit and was not kept.
    """

    _root: ClassVar[str] = "response"

    status: Annotated[StrictInt, Field(ge=100, le=599)] | None = None
    body: Any = None
    model: StrictStr | None = None
    response_id: StrictStr | None = None
    finish_reasons: list[StrictStr] = Field(default_factory=list)
    usage: TokenUsage | None = None
    error: StrictStr | None = None
    stream: StrictBool = False
    latency_ms: Millis
    ttft_ms: Millis | None = None
    completed_at: dt.datetime = Field(default_factory=now_ms)
    truncated: StrictBool = False

    @field_validator("body", mode="before")
    @classmethod
    def _normalise_body(cls, value: Any) -> Any:
        if type(value) is DecodedBody:
            return _decoded(value)
        try:
            return normalize_payload(value)[0]
        except InvalidPayload as exc:
            raise _body_error(exc) from None

    @field_validator("latency_ms", "ttft_ms", mode="before")
    @classmethod
    def _finite_millis(cls, value: Any) -> Any:
        # Strict floats take ints; refuse bools and non-finite values with our words.
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInput(f"must be a number of milliseconds, got {a_type(value)}")
        if not math.isfinite(value) or value < 0:
            raise InvalidInput(
                f"must be a finite number of milliseconds, zero or more; got {value}"
            )
        return float(value)

    @field_validator("completed_at", mode="before")
    @classmethod
    def _aware_completed_at(cls, value: Any) -> dt.datetime:
        # The field's name is added by the refusal, which knows where it is.
        return to_utc_ms(aware_utc("", value))


class DecodedBody:
    """A body the capture decoded from bytes itself, handed to ``LLMResponse(body=...)``.

    Nothing else holds it, so it is checked as any body is (the same errors)
    but not copied: a copy guards a caller's object against later changes,
    and there is no caller's object here. ``plain`` says the decoder vouches
    for it (:func:`~llmreq_mongo._capture.decode.loads_plain`): plain JSON
    that the check would pass as it is, so it is not walked at all.
    """

    __slots__ = ("plain", "value")

    def __init__(self, value: Any, *, plain: bool = False) -> None:
        self.value = value
        self.plain = plain


def _decoded(body: DecodedBody) -> Any:
    """The stored value of a body the capture decoded: itself, once checked unless plain.

    Raises:
        InvalidPayload: the body is not storable JSON (named ``response.body``).
    """
    if body.plain:
        return body.value
    try:
        return checked_payload(body.value)[0]
    except InvalidPayload as exc:
        raise _body_error(exc) from None


def vouched_response(fields: dict[str, Any], body: DecodedBody | None) -> LLMResponse:
    """``LLMResponse(**fields, body=body)``, its body vouched for when the decoder did.

    ``fields`` are every field but ``body``. When they are of the kinds the
    capture makes (:func:`_made_by_capture`), the response is built from
    them as they are, with only the body checked; otherwise by validation.

    Raises:
        InvalidInput: as ``LLMResponse(...)``.
    """
    if _made_by_capture(fields):
        values = dict(fields)
        values["body"] = None if body is None else _decoded(body)
        response = _trusted(LLMResponse, values)
    else:
        response = LLMResponse(**fields, body=body)
    if body is not None and body.plain:
        vouch(body.value)
    return response


def trusted_usage(counts: dict[str, int | None]) -> TokenUsage:
    """``TokenUsage(**counts)`` for counts already checked: each None or within 0..2^63-1.

    Every field is given. Counts of another kind are validated (and refused) as
    ``TokenUsage(**counts)`` does.
    """
    for value in counts.values():
        if value is not None and not is_count(value):
            return TokenUsage(**counts)
    return _trusted(TokenUsage, counts)


def is_count(value: Any) -> bool:
    """Whether ``value`` is a token count as :class:`TokenUsage` keeps it: an int, 0..2^63-1."""
    return type(value) is int and 0 <= value <= INT64_MAX


# -- building a model from values known to be valid -----------------------------------
#
# A response read by the capture is built once per call, on the path of every
# response a server sends. Its values are made by the parser itself (a status
# from the server, strings it decoded, its own timings), so their validation
# can only pass; done through pydantic it is the costliest part of reading a
# response once caches are cold (a busy server): about 65 µs a response, where
# setting the four attributes of a pydantic instance costs about 12 µs.
# _trusted does that, as BaseModel.model_construct does (the public way, about
# 30 µs), when pydantic's instances hold those four attributes; otherwise it
# calls model_construct. tests/capture/test_trusted_models.py holds it to the
# validated result, field for field.

_SLOTS = ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")
_DIRECT = tuple(BaseModel.__slots__) == _SLOTS
_set = object.__setattr__
_Model = TypeVar("_Model", bound=BaseModel)


def _trusted(cls: type[_Model], values: dict[str, Any]) -> _Model:
    """An instance of ``cls`` holding ``values`` (every field, each valid), unvalidated."""
    if not _DIRECT:
        return cls.model_construct(**values)
    instance = cls.__new__(cls)
    ordered = {name: values[name] for name in _FIELD_ORDER[cls]}
    _set(instance, "__dict__", ordered)
    _set(instance, "__pydantic_fields_set__", set(ordered))
    _set(instance, "__pydantic_extra__", None)
    _set(instance, "__pydantic_private__", None)
    return instance


def _is_str(value: Any) -> bool:
    return value is None or type(value) is str


def _is_millis(value: Any) -> bool:
    return type(value) is float and 0.0 <= value < math.inf


def _made_by_capture(fields: dict[str, Any]) -> bool:
    """Whether ``fields`` (all but ``body``) hold only values the model would keep as they are."""
    if fields.keys() != _CAPTURED_FIELDS:
        return False
    status, usage, ttft = fields["status"], fields["usage"], fields["ttft_ms"]
    completed = fields["completed_at"]
    return (
        (status is None or (type(status) is int and 100 <= status <= 599))
        and _is_str(fields["model"])
        and _is_str(fields["response_id"])
        and _is_str(fields["error"])
        and type(fields["finish_reasons"]) is list
        and all(type(reason) is str for reason in fields["finish_reasons"])
        and (usage is None or type(usage) is TokenUsage)
        and type(fields["stream"]) is bool
        and type(fields["truncated"]) is bool
        and _is_millis(fields["latency_ms"])
        and (ttft is None or _is_millis(ttft))
        # As now_ms() makes it: UTC, to the millisecond.
        and type(completed) is dt.datetime
        and completed.tzinfo is UTC
        and completed.microsecond % 1000 == 0
    )


def has_plain_body(response: LLMResponse) -> bool:
    """Whether ``response.body`` is None or known to be plain JSON without a walk.

    Known when it is still the very object the capture decoded and vouched
    for (:func:`~llmreq_mongo._queries.vouch`); that answer is given once.
    """
    body = response.body
    return body is None or vouched(body)


def _body_error(exc: InvalidPayload) -> InvalidPayload:
    """``exc``, its message naming ``response.body`` instead of ``request``.

    The same exception object is kept (its class, ``PayloadTooLarge`` for
    one, and its attributes); only the message's root changes.
    """
    text = str(exc)
    prefix = f"request{exc.path}: "
    detail = text[len(prefix) :] if text.startswith(prefix) else text
    exc.args = (f"response.body{exc.path}: {detail}",)
    return exc


def _refusal(root: str, exc: ValidationError) -> InvalidInput:
    """One typed error for a failed validation: ours when a validator raised one."""
    problems: list[str] = []
    for error in exc.errors():
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, InvalidPayload):
            return cause
        where = ".".join(str(part) for part in (root, *error["loc"]))
        if isinstance(cause, InvalidInput):
            text = str(cause).strip()
            if error["loc"] and text.startswith(f"{error['loc'][-1]}."):
                # A nested model's refusal already names its own fields.
                problems.append(f"{where.rsplit('.', 1)[0]}.{text}")
            else:
                problems.append(f"{where} {text}")
        elif error["type"] == "extra_forbidden":
            problems.append(f"{where} is not a field of {root}; remove it")
        elif error["type"] == "missing":
            problems.append(f"{where} is required")
        else:
            hint = _HINTS.get(str(error["loc"][0]), "") if error["loc"] else ""
            problems.append(f"{where}: {error['msg']}, got {_shown(error.get('input'))}{hint}")
    return InvalidInput("; ".join(problems))


#: Each model's fields, in their order (a model's __dict__ holds them so).
_FIELD_ORDER: dict[type[BaseModel], tuple[str, ...]] = {
    model: tuple(model.model_fields) for model in (LLMResponse, TokenUsage)
}
#: The fields of a response but its body: what the capture gives vouched_response.
_CAPTURED_FIELDS = LLMResponse.model_fields.keys() - {"body"}

_HINTS = {
    "usage": "; a token count is a non-negative integer, or None when it was not reported",
    "status": "; pass the HTTP status as an int (100 to 599), or None",
}
_HINTS.update(dict.fromkeys(TokenUsage.model_fields, _HINTS["usage"]))


def _shown(value: Any) -> str:
    """A short rendering of a refused value: itself when it is a small scalar."""
    if isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= 40):
        return f"{value!r} ({a_type(value)})"
    return a_type(value)


def response_from(value: Any) -> LLMResponse:
    """Return ``value`` as an :class:`LLMResponse`: itself, or one built from a dict.

    The dict has the fields of :class:`LLMResponse` (``usage`` as a dict or a
    :class:`TokenUsage`); only ``latency_ms`` is required.

    Raises:
        InvalidPayload: the body is not JSON (the message names where in
            ``response.body``).
        InvalidInput: anything else is refused: another type, an unknown
            field, a count that is not a non-negative integer, a naive
            ``completed_at``.
    """
    # The exact class first: isinstance() on a pydantic model class runs
    # ABCMeta's check, in Python, on every record.
    if type(value) is LLMResponse or isinstance(value, LLMResponse):
        return value
    if not isinstance(value, Mapping):
        raise InvalidInput(
            f"response must be an LLMResponse or a dict of its fields, got {a_type(value)}"
        )
    fields: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise InvalidInput(f"response field names must be strings, got {key!r}")
        fields[key] = item
    return LLMResponse(**fields)
