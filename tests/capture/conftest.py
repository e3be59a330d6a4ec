"""The official SDKs against the local upstream, with a copy of every byte they read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import anthropic
import httpx
import httpx2
import openai
import pytest
from capture_tee import Tee2Transport, TeeTransport
from capture_upstream import upstream_app


@pytest.fixture
def tee() -> Any:
    """The tee the openai client sends through (httpx)."""
    return TeeTransport(httpx.ASGITransport(app=upstream_app()))


@pytest.fixture
def tee2() -> Any:
    """The tee the anthropic client sends through (httpx2)."""
    return Tee2Transport(httpx2.ASGITransport(app=upstream_app()))


@pytest.fixture
async def openai_client(tee: Any) -> AsyncIterator[openai.AsyncOpenAI]:
    async with httpx.AsyncClient(transport=tee) as http:
        yield openai.AsyncOpenAI(
            api_key="sk-test",
            base_url="http://upstream.test/v1",
            # openai 3.x still takes an httpx client, though it is typed for httpx2.
            http_client=cast(Any, http),
            max_retries=0,
        )


@pytest.fixture
async def anthropic_client(tee2: Any) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with httpx2.AsyncClient(transport=tee2) as http:
        yield anthropic.AsyncAnthropic(
            api_key="sk-ant-test", base_url="http://upstream.test", http_client=http, max_retries=0
        )
