"""The public names of the integrations are pinned, and the ASGI one needs no web framework."""

from __future__ import annotations

import asyncio
import sys

from llmreq_mongo import integrations
from llmreq_mongo.integrations import asgi, fastapi


def test_the_integration_modules_export_exactly_these_names() -> None:
    assert integrations.__all__ == []
    assert set(asgi.__all__) == {
        "ASGIApp",
        "ClientSource",
        "DEFAULT_PATHS",
        "DEFAULT_SESSION_KEY_SOURCES",
        "LLMRequestLogger",
        "Message",
        "NO_BODY",
        "Receive",
        "RecorderSource",
        "RequestLoggerStats",
        "Scope",
        "Send",
        "SessionKeyFinder",
        "SupportsRecord",
        "parse_json_body",
    }
    assert set(fastapi.__all__) == {
        "AppLifespan",
        "LLMReqLifespan",
        "get_llm_client",
        "get_recorder",
        "get_session_key",
        "history_router",
        "history_ui",
        "session_key_dependency",
    }
    for module in (asgi, fastapi):
        for name in module.__all__:
            assert getattr(module, name) is not None


async def test_the_asgi_middleware_imports_no_web_framework() -> None:
    check = (
        "import sys, llmreq_mongo.integrations.asgi; "
        "loaded = sorted({'starlette', 'fastapi', 'litestar', 'anyio'} & set(sys.modules)); "
        "assert not loaded, loaded"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", check, stderr=asyncio.subprocess.PIPE
    )
    _, err = await process.communicate()
    assert process.returncode == 0, err.decode()


async def test_without_fastapi_the_import_error_says_what_to_install() -> None:
    check = (
        "import sys\n"
        "sys.modules['fastapi'] = None  # as if it were not installed\n"
        "try:\n"
        "    import llmreq_mongo.integrations.fastapi\n"
        "except ImportError as exc:\n"
        "    assert 'pip install \"llmreq-mongo[fastapi]\"' in str(exc), exc\n"
        "else:\n"
        "    raise SystemExit('imported without fastapi')\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", check, stderr=asyncio.subprocess.PIPE
    )
    _, err = await process.communicate()
    assert process.returncode == 0, err.decode()
