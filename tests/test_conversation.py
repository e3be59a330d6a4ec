"""Reading a session as a conversation: each call's new messages only."""

from __future__ import annotations

from llmreq_mongo._reports.conversation import ChatMessage, Conversation, chat_messages


def _chat(*pairs: tuple[str, str]) -> dict[str, object]:
    return {"model": "m", "messages": [{"role": r, "content": c} for r, c in pairs]}


def test_each_call_shows_what_it_adds() -> None:
    conversation = Conversation()
    first = conversation.add(_chat(("system", "brief"), ("user", "hi")))
    assert first.messages == (ChatMessage("system", "brief"), ChatMessage("user", "hi"))
    assert first.earlier == 0
    second = conversation.add(
        _chat(("system", "brief"), ("user", "hi"), ("assistant", "yo"), ("user", "more"))
    )
    assert second.messages == (ChatMessage("assistant", "yo"), ChatMessage("user", "more"))
    assert second.earlier == 2


def test_a_call_that_starts_over_shows_everything() -> None:
    conversation = Conversation()
    conversation.add(_chat(("user", "one")))
    restart = conversation.add(_chat(("user", "two")))
    assert restart.messages == (ChatMessage("user", "two"),)
    assert restart.earlier == 0


def test_non_chat_payloads_break_the_thread() -> None:
    conversation = Conversation()
    conversation.add(_chat(("user", "one")))
    assert conversation.add({"input": "text"}).messages is None
    again = conversation.add(_chat(("user", "one"), ("user", "two")))
    assert again.earlier == 0 and len(again.messages or ()) == 2


def test_message_content_in_parts() -> None:
    payload = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url"}]},
            {"role": "tool", "content": {"result": 1}},
            {"role": "assistant", "content": None},
        ]
    }
    assert chat_messages(payload) == [
        ("user", "look [image_url]"),
        ("tool", '{"result":1}'),
        ("assistant", ""),
    ]
    assert chat_messages({"messages": [{"content": "no role"}]}) is None
    assert chat_messages({"messages": []}) is None
    assert chat_messages(["not", "a", "dict"]) is None


def test_a_client_that_trims_old_turns() -> None:
    conversation = Conversation()
    conversation.add(_chat(("system", "s"), ("user", "u1"), ("assistant", "a1"), ("user", "u2")))
    # The oldest turn dropped, the system prompt kept: only the last two are new.
    trimmed = conversation.add(
        _chat(
            ("system", "s"),
            ("assistant", "a1"),
            ("user", "u2"),
            ("assistant", "a2"),
            ("user", "u3"),
        )
    )
    assert trimmed.earlier == 3
    assert trimmed.messages == (ChatMessage("assistant", "a2"), ChatMessage("user", "u3"))
    # The oldest turns dropped with no system prompt.
    dropped = conversation.add(
        _chat(("user", "u2"), ("assistant", "a2"), ("user", "u3"), ("user", "u4"))
    )
    assert dropped.earlier == 3 and dropped.messages == (ChatMessage("user", "u4"),)


def test_one_matching_message_is_not_a_repeat() -> None:
    conversation = Conversation()
    conversation.add(_chat(("user", "hello"), ("assistant", "ok")))
    again = conversation.add(_chat(("assistant", "ok"), ("user", "new")))
    assert again.earlier == 0 and len(again.messages or ()) == 2
