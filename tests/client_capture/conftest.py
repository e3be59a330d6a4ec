"""Fixtures for client-side capture: the official SDKs through a RecordingTransport.

The local upstream that answers as the OpenAI and Anthropic APIs do lives
beside the parser's tests, in ``tests/capture/capture_upstream.py``; its
folder is put on the import path here so that both suites share one upstream.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "capture"))

from llmreq_mongo import LLMClient, Recorder


@pytest.fixture
async def bot(llmreq_db: object) -> LLMClient:
    """A saved LLM client in a fresh database."""
    return await LLMClient.objects.create(name="sdk-bot")


@pytest.fixture
async def recorder(bot: LLMClient) -> AsyncIterator[Recorder]:
    """A running recorder writing to the test's database."""
    async with Recorder(flush_interval=0.01) as rec:
        yield rec
