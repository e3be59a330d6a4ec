"""Errors carry the context a handler needs, and say what to do."""

from __future__ import annotations

import pytest

from llmreq_mongo import (
    AlreadyExists,
    DoesNotExist,
    LLMClient,
    LLMClientRequest,
    MultipleObjectsReturned,
    NotInitialized,
    NotUpdated,
    TimestampedDocument,
)


async def test_documents_used_before_init_say_to_call_init() -> None:
    class NeverRegistered(TimestampedDocument):
        """A document class that no init() call registers: it is made here."""

        score: int = 0

    with pytest.raises(NotInitialized, match=r"llmreq_mongo\.init") as caught:
        await NeverRegistered.objects.count()
    assert caught.value.model is NeverRegistered
    # Beanie's own entry points go through the same check.
    with pytest.raises(NotInitialized):
        await NeverRegistered.find_all().to_list()
    with pytest.raises(NotInitialized):
        await NeverRegistered(score=1).insert()


async def test_does_not_exist_carries_the_model_and_the_lookups(llmreq_db: object) -> None:
    with pytest.raises(LLMClient.DoesNotExist) as caught:
        await LLMClient.objects.get(name="nobody")
    assert isinstance(caught.value, DoesNotExist)
    assert caught.value.model is LLMClient
    assert caught.value.lookups == {"name": "nobody"}


async def test_multiple_objects_returned_carries_the_model_and_the_lookups(
    client: LLMClient,
) -> None:
    for _ in range(2):
        await LLMClientRequest.objects.create(llm_client=client, request={}, session_key="s")
    with pytest.raises(MultipleObjectsReturned) as caught:
        await LLMClientRequest.objects.get(session_key="s")
    assert caught.value.model is LLMClientRequest
    assert caught.value.lookups == {"session_key": "s"}


async def test_not_updated_carries_the_document(client: LLMClient) -> None:
    await LLMClient.objects.filter(name=client.name).delete()
    client.description = "changed"
    with pytest.raises(NotUpdated) as caught:
        await client.replace()
    assert caught.value.document is client
    never_saved = LLMClient(name="draft")
    with pytest.raises(NotUpdated, match="never saved") as caught:
        await never_saved.replace()
    assert caught.value.document is never_saved


async def test_already_exists_carries_the_conflicting_key(client: LLMClient) -> None:
    with pytest.raises(LLMClient.AlreadyExists) as caught:
        await LLMClient.objects.create(name=client.name)
    assert isinstance(caught.value, AlreadyExists)
    assert caught.value.key == {"name": client.name}


async def test_an_unregistered_subclass_never_borrows_its_parents_collection(
    llmreq_db: object,
) -> None:
    class Unregistered(LLMClient):
        """Derived from a registered document, but never registered itself."""

    with pytest.raises(NotInitialized):
        await Unregistered.objects.create(name="stray")
    assert not await LLMClient.objects.filter(name="stray").exists()
