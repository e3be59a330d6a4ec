"""Payloads read back hold exactly the JSON types that went in, on every read path."""

from __future__ import annotations

from typing import Any

from bson import Int64

from llmreq_mongo import LLMClient, LLMClientRequest
from llmreq_mongo._queries import decode_payload

PAYLOAD: dict[str, Any] = {
    "model": "gpt-4o",
    "big": 2**40,
    "small": 7,
    "neg": -(2**62),
    "ratio": 0.5,
    "ok": True,
    "none": None,
    "messages": [{"role": "user", "content": "hi", "tokens": [2**33, 1]}, [[]]],
    "$schema": {"a.b": [3000000000]},
}

PLAIN = (dict, list, str, int, float, bool, type(None))


def assert_plain(value: Any, path: str = "request") -> None:
    """Every node is of exactly one of the JSON types (``type(x) is int``, not a subclass)."""
    assert type(value) in PLAIN, f"{path} is a {type(value).__module__}.{type(value).__name__}"
    if type(value) is dict:
        for key, item in value.items():
            assert type(key) is str
            assert_plain(item, f"{path}[{key!r}]")
    elif type(value) is list:
        for index, item in enumerate(value):
            assert_plain(item, f"{path}[{index}]")


async def test_every_read_path_gives_plain_json(client: LLMClient) -> None:
    made = await LLMClientRequest.objects.create(
        llm_client=client, request=PAYLOAD, session_key="s"
    )
    assert_plain(made.request)
    qs = LLMClientRequest.objects.filter(session_key="s")
    reads: list[Any] = [
        (await LLMClientRequest.objects.get(pk=made.id)).request,
        (await qs.to_list())[0].request,
        (await qs.first()).request,  # type: ignore[union-attr]
        (await qs.last()).request,  # type: ignore[union-attr]
        (await qs.page(size=5)).items[0].request,
        *[r.request async for r in qs],
        *[r.request async for r in qs.iterator(batch_size=1)],
        (await LLMClientRequest.find(LLMClientRequest.session_key == "s").to_list())[0].request,
        (await LLMClientRequest.get(made.id)).request,  # type: ignore[union-attr]
        (await LLMClientRequest.find_one({"session_key": "s"})).request,
        (await LLMClientRequest.objects.for_session("s").to_list())[0].request,
    ]
    raw = await LLMClientRequest.get_pymongo_collection().find_one({"_id": made.id})
    assert raw is not None
    assert type(raw["request"]["big"]) is Int64  # what the driver gives: the reason for this
    reads.append(decode_payload(raw["request"]))
    for got in reads:
        assert_plain(got)
        assert got == PAYLOAD
        assert list(got) == list(PAYLOAD)


async def test_beanie_writes_still_store_escaped_keys(client: LLMClient) -> None:
    doc = LLMClientRequest(llm_client=client, request=PAYLOAD, session_key="b")
    await doc.insert()
    got = await LLMClientRequest.objects.get(pk=doc.id)
    got.session_key = "c"
    await got.save()
    raw = await LLMClientRequest.get_pymongo_collection().find_one({"_id": doc.id})
    assert raw is not None
    assert "%24schema" in raw["request"] and "$schema" not in raw["request"]
    assert list(raw["request"]["%24schema"]) == ["a%2Eb"]
    again = await LLMClientRequest.objects.get(pk=doc.id)
    assert again.request == PAYLOAD and again.session_key == "c"
    assert_plain(again.request)
    assert_plain(got.request)  # the attribute itself never holds the stored form


async def test_int_subclasses_and_str_subclasses_go_in_as_plain_types(client: LLMClient) -> None:
    import enum

    class Colour(str, enum.Enum):
        RED = "red"

    payload = {"n": Int64(5), "c": Colour.RED, Colour.RED: [Int64(2**40)]}
    made = await LLMClientRequest.objects.create(llm_client=client, request=payload)
    assert_plain(made.request)
    assert made.request == {"n": 5, "c": "red", "red": [2**40]}


async def test_client_metadata_reads_back_plain(llmreq_db: object) -> None:
    made = await LLMClient.objects.create(name="meta", metadata={"quota": 2**40, "l": [2**35]})
    got = await LLMClient.objects.get(pk=made.id)
    assert got.metadata == {"quota": 2**40, "l": [2**35]}
    assert_plain(got.metadata)
