"""The recorder's hooks: a before_record that fails refuses the record, async hooks are refused."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from llmreq_mongo import InvalidInput, LLMClient, LLMClientRequest, Recorder


async def test_a_before_record_that_raises_refuses_the_record(client: LLMClient) -> None:
    def redact(payload: Any) -> Any:
        raise KeyError("api_key")

    async with Recorder(before_record=redact) as recorder:
        with pytest.raises(InvalidInput, match="before_record raised KeyError") as info:
            recorder.record(client, {"api_key": "sk-123"})
        assert isinstance(info.value.__cause__, KeyError)
        with pytest.raises(InvalidInput, match="before_record raised"):
            recorder.call(client, {"api_key": "sk-123"})
        assert recorder.stats.accepted == 0
    assert await LLMClientRequest.objects.count() == 0  # never stored unredacted


async def test_a_before_record_returning_none_is_logged_once(
    client: LLMClient, caplog: pytest.LogCaptureFixture
) -> None:
    def forgot_return(payload: Any) -> None:
        payload.pop("api_key", None)

    with caplog.at_level(logging.WARNING, logger="llmreq_mongo.recorder"):
        async with Recorder(before_record=forgot_return) as recorder:
            kept = [recorder.record(client, {"api_key": "sk", "n": i}) for i in range(3)]
            await recorder.flush()
    warned = [r for r in caplog.records if "before_record returned None" in r.getMessage()]
    assert len(warned) == 1
    assert [(await LLMClientRequest.objects.get(pk=i)).request for i in kept] == [None] * 3


async def _written(ids: list[Any]) -> None:
    pass


class _AsyncHook:
    async def __call__(self, document: Any) -> None:
        pass


@pytest.mark.parametrize(
    "hook",
    [
        {"after_write": _written},
        {"on_drop": _AsyncHook()},
        {"before_record": _written},
        {"on_error": _written},
    ],
    ids=["after_write", "on_drop object", "before_record", "on_error"],
)
def test_async_hooks_are_refused(hook: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="not an async one"):
        Recorder(**hook)
