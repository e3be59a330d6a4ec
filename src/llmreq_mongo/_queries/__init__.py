"""The queries layer: payload encoding, lookups, filters, keyset pages, QuerySet, Manager.

It turns what a caller asks for into MongoDB filters and pipelines, checked
before anything is sent. It depends only on the leaves (errors, time,
checks, types); the documents layer builds on it.
"""

from .filters import RAW_ONLY, payload_path, scoped_match
from .lookups import FieldSpec, field_specs, resolve_field, translate_lookups
from .manager import Manager, ManagerDescriptor
from .pagination import (
    MAX_PAGE_SIZE,
    Page,
    cursor_values,
    decode_cursor,
    encode_cursor,
    fingerprint,
    keyset_pipeline,
    with_tiebreak,
)
from .payload import (
    MAX_DOCUMENT_BYTES,
    MAX_NESTING,
    MAX_PAYLOAD_BYTES,
    checked_payload,
    decode_payload,
    encode_payload,
    escape_key,
    normalize_payload,
    stored_payload,
)
from .plain import (
    NOT_PLAIN,
    forget_vouched,
    is_plain,
    is_plain_json_text,
    plain_copy,
    vouch,
    vouched,
)
from .queryset import QuerySet
from .values import ValuesQuerySet

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "MAX_NESTING",
    "MAX_PAGE_SIZE",
    "MAX_PAYLOAD_BYTES",
    "NOT_PLAIN",
    "RAW_ONLY",
    "FieldSpec",
    "Manager",
    "ManagerDescriptor",
    "Page",
    "QuerySet",
    "ValuesQuerySet",
    "cursor_values",
    "decode_cursor",
    "checked_payload",
    "decode_payload",
    "encode_cursor",
    "encode_payload",
    "forget_vouched",
    "is_plain",
    "is_plain_json_text",
    "escape_key",
    "field_specs",
    "fingerprint",
    "keyset_pipeline",
    "plain_copy",
    "normalize_payload",
    "stored_payload",
    "payload_path",
    "resolve_field",
    "scoped_match",
    "translate_lookups",
    "vouch",
    "vouched",
    "with_tiebreak",
]
