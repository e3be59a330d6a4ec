"""The timeline ``llmreq show`` prints: each request, and its response under it."""

from __future__ import annotations

from typing import Any

from llmreq_mongo._documents import LLMClientRequest
from llmreq_mongo._reports.conversation import Conversation
from llmreq_mongo._reports.shown import written_out

from ._answers import answered_text, response_json, response_lines
from ._app import Settings
from ._durations import format_time
from ._names import name_of
from ._render import dump_json, plural

__all__ = ["Timeline"]


class Timeline:
    """Prints a session's requests one by one (streaming, constant memory)."""

    def __init__(self, settings: Settings, names: dict[Any, str], as_json: bool) -> None:
        self.console = settings.console
        self.names = names
        self.as_json = as_json
        self.count = 0
        self.conversation = Conversation()

    def add(self, req: LLMClientRequest) -> None:
        client = name_of(self.names, req.llm_client_id)
        if self.as_json:
            record = {
                "id": str(req.id),
                "created_at": format_time(req.created_at),
                "updated_at": format_time(req.updated_at),
                "llm_client": {"id": str(req.llm_client_id), "name": client},
                "session_key": req.session_key,
                "is_aggregation": req.is_aggregation,
                "request": req.request,
                "response": response_json(req.response),
            }
            self.console.file.write(("[\n  " if not self.count else ",\n  ") + dump_json(record))
            self.count += 1
            return
        self.count += 1
        payload = req.request
        turn = self.conversation.add(payload)
        # Names on the heading's one line: a newline in them is written out too.
        heading = [format_time(req.created_at), written_out(client)]
        if isinstance(payload, dict) and isinstance(payload.get("model"), str):
            heading.append(written_out(payload["model"]))
        if req.is_aggregation:
            heading.append("[rollup]")
        if turn.messages is None:
            self.console.print("  ".join(heading), style="bold", markup=False)
            self.console.print(_indent(dump_json(payload, indent=2)), markup=False)
        else:
            # Chat clients resend the whole conversation: show only what is new.
            if turn.earlier:
                shown = len(turn.messages)
                heading.append(f"(+{shown} after {plural(turn.earlier, 'earlier message')})")
            self.console.print("  ".join(heading), style="bold", markup=False)
            for message in turn.messages:
                text = _indent(message.text, 12).lstrip()
                self.console.print(f"  {written_out(message.role):<9} " + text, markup=False)
        if req.response is not None:
            for line in response_lines(req.response):
                self.console.print(line, markup=False, highlight=False)
            said = answered_text(req.response)
            if said is not None:
                # The next call resends the answer just shown: not new there.
                self.conversation.answered(said)

    def close(self) -> None:
        if self.as_json:
            self.console.file.write("\n]\n" if self.count else "")
            self.console.file.flush()


def _indent(text: str, width: int = 2) -> str:
    pad = " " * width
    return "\n".join(pad + line for line in text.splitlines() or [""])
