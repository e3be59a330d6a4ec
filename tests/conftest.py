"""Shared test helpers. The ``llmreq_engine`` and ``llmreq_db`` fixtures come
from the package's own pytest plugin, exactly as users get them."""

from __future__ import annotations

import pytest

from llmreq_mongo import LLMClient


@pytest.fixture
async def client(llmreq_db: object) -> LLMClient:
    """A saved LLM client in a fresh database."""
    return await LLMClient.objects.create(name="support-bot", description="answers tickets")
