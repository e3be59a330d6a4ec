"""The public API is pinned: a change to it is a deliberate change to this test."""

from __future__ import annotations

import importlib

import llmreq_mongo
from llmreq_mongo import errors

PUBLIC = {
    "AlreadyExists",
    "DoesNotExist",
    "Handle",
    "InvalidCursor",
    "InvalidInput",
    "InvalidLookup",
    "InvalidPayload",
    "LLMClient",
    "LLMClientRequest",
    "LLMClientRequests",
    "LLMReqError",
    "Manager",
    "MultipleObjectsReturned",
    "NotUpdated",
    "Page",
    "PayloadTooLarge",
    "QuerySet",
    "Recorder",
    "RecorderStats",
    "RollupResult",
    "StorageError",
    "TimestampedDocument",
    "aggregate_sessions",
    "init",
}


def test_package_exports_exactly_the_public_names() -> None:
    assert set(llmreq_mongo.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(llmreq_mongo, name) is not None


def test_every_error_derives_from_the_root_and_has_a_docstring() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        if not isinstance(cls, type):
            continue  # storage_errors, the driver-error mapping
        assert issubclass(cls, errors.LLMReqError), name
        assert cls.__doc__, name
        assert name in (errors.__doc__ or ""), f"{name} missing from the tree drawing"


def test_every_public_module_declares_all() -> None:
    for module in (
        "llmreq_mongo.errors",
        "llmreq_mongo.embedded",
        "llmreq_mongo.pytest_plugin",
        "llmreq_mongo.analytics",
        "llmreq_mongo.integrations.asgi",
        "llmreq_mongo.integrations.fastapi",
    ):
        assert importlib.import_module(module).__all__
