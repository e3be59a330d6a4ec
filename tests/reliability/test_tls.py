"""TLS: the engine with a certificate from a test CA (``trustme``).

The library connects with ``tls=true&tlsCAFile=...`` and works as usual; a
client that does not trust the certificate's CA, or that speaks plaintext to
the TLS port, gets one clear ``StorageError`` and nothing is written.
"""

from __future__ import annotations

import asyncio
import gc
import uuid
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from _reliability import Tally

from llmreq_mongo import InvalidInput, LLMClient, LLMClientRequest, StorageError, init
from llmreq_mongo.embedded import EmbeddedMongo
from llmreq_mongo.pytest_plugin import TestServer


@dataclass
class TLSEngine:
    host: str  # host:port
    ca_file: Path
    other_ca_file: Path

    def uri(self, options: str) -> str:
        return f"mongodb://{self.host}/?serverSelectionTimeoutMS=1500&{options}"


@pytest.fixture(scope="module")
async def tls_engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TLSEngine]:
    tmp = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = tmp / "server.pem", tmp / "server.key", tmp / "ca.pem"
    with cert_file.open("wb") as out:
        for pem in cert.cert_chain_pems:
            out.write(pem.bytes())
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    other_ca_file = tmp / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca_file))
    async with EmbeddedMongo(
        port=0, tls_cert_file=str(cert_file), tls_key_file=str(key_file)
    ) as engine:
        host = engine.uri.removeprefix("mongodb://").split("/")[0].split("?")[0]
        yield TLSEngine(host, ca_file, other_ca_file)


async def test_library_works_over_tls(tls_engine: TLSEngine) -> None:
    name = f"llmreq_tls_{uuid.uuid4().hex[:12]}"
    handle = await init(tls_engine.uri(f"tls=true&tlsCAFile={tls_engine.ca_file}"), database=name)
    try:
        client = await LLMClient.objects.create(name="tls-bot")
        for n in range(20):
            await LLMClientRequest.objects.create(
                llm_client=client, request={"n": n}, session_key="tls"
            )
        assert await LLMClientRequest.objects.filter(session_key="tls").count() == 20
        hello = await handle.client.admin.command("ping")
        assert hello["ok"] == 1
    finally:
        await handle.client.drop_database(name)
        await handle.close()
    Tally(
        "tls",
        "trusted CA, tls=true",
        "trustme CA, server cert for 127.0.0.1",
        attempted=20,
        acknowledged=20,
        stored=20,
        result="ok",
    ).file()


# PyMongo 4.20's async TLS handshake does not close its socket when the
# handshake fails (pool_shared._configured_protocol_interface), so the socket's
# finaliser warns. The test collects it here, so the warning is ignored for this
# test alone rather than surfacing in whichever test runs next.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize(
    ("scenario", "options"),
    [
        ("untrusted CA", "tls=true&tlsCAFile={other}"),
        ("system CAs only", "tls=true"),
        ("plaintext to a TLS port", "tls=false"),
    ],
    ids=["untrusted-ca", "system-cas", "plaintext"],
)
async def test_untrusted_connection_is_refused(
    tls_engine: TLSEngine, scenario: str, options: str
) -> None:
    uri = tls_engine.uri(options.format(other=tls_engine.other_ca_file))
    with pytest.raises(StorageError) as info:
        await init(uri, database=f"llmreq_tls_{uuid.uuid4().hex[:12]}")
    message = str(info.value)
    cause = type(info.value.__cause__).__name__
    # The refused connection's socket is only reachable through the error; drop
    # it and let the socket's finaliser run inside this test. Until it is
    # closed, the engine's accept loop waits on its TLS handshake.
    del info
    await asyncio.sleep(0.05)
    gc.collect()
    assert cause != "NoneType"
    if scenario == "untrusted CA":
        # With the system CAs the first handshake can outlast the 1.5 s server
        # selection, and PyMongo then reports "No servers found yet" instead.
        assert "certificate" in message.lower(), message
    Tally(
        "tls",
        scenario,
        "client without the server's CA" if "CA" in scenario else "no TLS",
        attempted=1,
        errors={f"StorageError({cause})": 1},
        result="ok",
        notes=message[:70],
    ).file()


@pytest.mark.parametrize("value", ["maybe", "ture", "1yes"])
async def test_a_misspelt_tls_option_is_refused_not_ignored(
    llmreq_engine: TestServer, value: str
) -> None:
    """``tls=ture`` must not quietly mean plaintext.

    The test server speaks plaintext, so a URI that asks for TLS, however
    misspelt, must not reach it. PyMongo only warns about an option value it
    cannot read and goes on without it; the warning is silenced here, as it is
    in an application that does not turn warnings into errors, so what the
    test sees is what such an application gets.
    """
    joiner = "&" if "?" in llmreq_engine.uri else "?"
    uri = f"{llmreq_engine.uri}{joiner}tls={value}&serverSelectionTimeoutMS=2000"
    outcome = "refused"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            handle = await init(uri, database="llmreq_tls_option")
        except InvalidInput:
            pass
        except StorageError as exc:
            outcome = f"not refused, failed later: {exc}"
        else:
            await handle.client.drop_database("llmreq_tls_option")
            await handle.close()
            outcome = "connected in plaintext"
    assert outcome == "refused", outcome
