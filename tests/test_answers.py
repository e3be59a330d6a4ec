"""Reading the assistant's answer out of the three response body shapes."""

from __future__ import annotations

from typing import Any

from llmreq_mongo._reports.answers import Answer, ToolCall, answer_of, error_of
from llmreq_mongo._reports.conversation import Conversation


def test_openai_chat_completion_text_and_tool_calls() -> None:
    body = {
        "choices": [
            {"message": {"role": "assistant", "content": "Checking."}},
            {
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"function": {"name": "get_order", "arguments": '{"id": 5}'}},
                        {"function": {"name": "get_user", "arguments": "{}"}},
                    ],
                }
            },
        ]
    }
    assert answer_of(body) == Answer(
        "Checking.", (ToolCall("get_order", '{"id": 5}'), ToolCall("get_user", "{}"))
    )


def test_openai_responses_api_output_items() -> None:
    body = {
        "output": [
            {"type": "reasoning", "summary": []},
            {
                "type": "message",
                "content": [
                    {"type": "output_text", "text": "Hello "},
                    {"type": "output_text", "text": "there"},
                ],
            },
            {"type": "function_call", "name": "lookup", "arguments": '{"q":"x"}'},
        ]
    }
    assert answer_of(body) == Answer("Hello there", (ToolCall("lookup", '{"q":"x"}'),))


def test_anthropic_message_blocks() -> None:
    body = {
        "type": "message",
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "t1", "name": "search", "input": {"q": "café"}},
        ],
    }
    assert answer_of(body) == Answer("Let me look.", (ToolCall("search", '{"q":"café"}'),))


def test_other_bodies_are_not_answers() -> None:
    bodies: tuple[Any, ...] = (None, "text", [1], {"data": []}, {"type": "message", "content": "x"})
    for body in bodies:
        assert answer_of(body) is None
    assert error_of({"error": {"message": "Rate limit reached"}}) == "Rate limit reached"
    assert error_of({"type": "error", "error": {"type": "overloaded", "message": "Busy"}}) == "Busy"
    assert error_of({"error": "bad"}) == "bad"
    assert error_of({"choices": []}) is None and error_of(None) is None


def test_an_answer_resent_by_the_next_call_is_not_new() -> None:
    first = {"messages": [{"role": "user", "content": "Hi"}]}
    second = {
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Bye"},
        ]
    }
    conversation = Conversation()
    conversation.add(first)
    conversation.answered("Hello!")
    turn = conversation.add(second)
    assert turn.earlier == 2 and [m.text for m in turn.messages or ()] == ["Bye"]
    # Without the answer, the assistant's message counts as new.
    plain = Conversation()
    plain.add(first)
    assert plain.add(second).earlier == 1
    # After a call that is not a chat, an answer changes nothing.
    other = Conversation()
    other.add({"prompt": "x"})
    other.answered("y")
    assert other.add(first).earlier == 0
