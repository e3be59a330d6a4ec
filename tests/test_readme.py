"""Every ```python block of the README compiles, and those that can run, run.

The runnable blocks run in order in one namespace, as a reader would type
them, against a fresh database on the test server; the address in the Usage
block is replaced by the test server's. Every other block is listed in
``NOT_RUN`` with the reason, so a new block must be classified here.
"""

from __future__ import annotations

import ast
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from llmreq_mongo import LLMClient, LLMClientRequest
from llmreq_mongo.pytest_plugin import TestServer

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)

#: Blocks run, by a line that only they hold, in README order.
RUN = [
    'handle = await llmreq_mongo.init("mongodb://localhost:27017", database="llmreq")',
    "second_ten = await LLMClientRequest.objects.order_by",
    "history = LLMClientRequest.objects.for_session(",
    "found = await LLMClientRequest.objects.filter(",
    'llmreq = LLMReqLifespan(llm_client="support-bot")',
    "stats = RequestLoggerStats()",
]

#: Blocks only compiled, by a line that only they hold, with the reason.
NOT_RUN = {
    'async with Recorder(spill_path="/var/lib/myapp/llmreq-{pid}.spill") as recorder:': (
        "writes a spill file under /var/lib and records a `[...]` placeholder; "
        "the recorder is run by tests/test_recorder*.py"
    ),
    "handle = await llmreq_mongo.init(uri, document_models=[Feedback])": (
        "initialises the default database `llmreq` of a URI; own documents are run by "
        "tests/test_documents.py"
    ),
    'handle = await llmreq_mongo.init("mongodb+srv://user:pass@cluster.example.net/")': (
        "needs a MongoDB Atlas cluster"
    ),
    "async with EmbeddedMongo() as engine:": (
        "starts a second engine inside the test process; tests/test_embedded.py runs it"
    ),
    "from myapp import build_app": "a test module of the reader's own application (myapp)",
    "app.include_router(history_ui(dependencies=[Depends(require_api_key)]), prefix=": (
        "mounts into the reader's own app and auth check; tests/ui mounts history_ui under a "
        "prefix behind an auth dependency in a real browser"
    ),
}


def blocks() -> list[str]:
    return FENCE.findall(README.read_text(encoding="utf-8"))


def _owner(block: str) -> str:
    keys = [k for k in [*RUN, *NOT_RUN] if k in block]
    assert len(keys) == 1, f"classify this README block in tests/test_readme.py:\n{block}"
    return keys[0]


def test_every_block_compiles_and_is_classified() -> None:
    found = blocks()
    assert len(found) >= len(RUN) + len(NOT_RUN)
    owners = []
    for block in found:
        compile(block, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        owners.append(_owner(block))
    assert sorted(owners) == sorted([*RUN, *NOT_RUN]), "a classified block is gone"
    assert all(reason.strip() for reason in NOT_RUN.values())
    assert [o for o in owners if o in RUN] == RUN, "RUN is in README order"


def test_the_schema_lookup_is_valid_python() -> None:
    text = README.read_text(encoding="utf-8")
    assert "filter(request__tools__0__parameters__$schema" not in text


async def _run(block: str, namespace: dict[str, Any]) -> None:
    code = compile(block, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)  # the README's own code, compiled above
    if result is not None:
        await result


async def _asgi_app(scope: Any, receive: Callable[[], Awaitable[Any]], send: Any) -> None:
    raise AssertionError("never called: the block only builds the middleware")


async def test_runnable_blocks_run(llmreq_engine: TestServer) -> None:
    database = f"llmreq_readme_{uuid.uuid4().hex[:12]}"
    by_key = {_owner(b): b for b in blocks()}
    namespace: dict[str, Any] = {"__name__": "readme", "re": re}
    usage = by_key[RUN[0]]
    usage = usage.replace('"mongodb://localhost:27017"', repr(llmreq_engine.uri))
    usage = usage.replace('database="llmreq"', f"database={database!r}")
    usage = usage.replace("await handle.close()", "")  # closed at the end of this test
    try:
        await _run(usage, namespace)
        client = namespace["my_llm_client"]
        assert isinstance(client, LLMClient)
        assert namespace["count"] == 1 and len(namespace["requests"]) == 1
        namespace.update(client=client, require_api_key=lambda: None)
        await _run(by_key[RUN[1]], namespace)
        assert namespace["rows"] == [
            {
                "id": namespace["newest"].id,
                "session_key": "abc123",
                "request__message": "Hello, llm_client!",
            }
        ]
        assert namespace["keys"] == ["abc123"]
        await _run(by_key[RUN[2]], namespace)
        await _run(by_key[RUN[3]], namespace)
        assert len(namespace["found"]) == 1
        assert isinstance(namespace["found"][0], LLMClientRequest)
        await _run(by_key[RUN[4]], namespace)
        assert type(namespace["app"]).__name__ == "FastAPI"
        namespace["app"] = _asgi_app
        namespace["recorder"] = lambda: None
        await _run(by_key[RUN[5]], namespace)
    finally:
        if "handle" in namespace:
            await namespace["handle"].client.drop_database(database)
            await namespace["handle"].close()
