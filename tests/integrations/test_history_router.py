"""history_router: pages, cursors, filters, errors, protection and the OpenAPI document."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import pytest
from bson import ObjectId
from fastapi import Depends, FastAPI, Header, HTTPException

from llmreq_mongo import InvalidInput, LLMClient, LLMClientRequest
from llmreq_mongo._documents import request_document, validate_request
from llmreq_mongo.integrations.asgi import ASGIApp
from llmreq_mongo.integrations.fastapi import history_router

Http = Callable[[ASGIApp], httpx.AsyncClient]
UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 1, 22, 30, tzinfo=UTC)


def public_app() -> FastAPI:
    app = FastAPI()
    app.include_router(history_router(public=True), prefix="/h")
    return app


async def seed(client: LLMClient, session_key: str | None, times: list[dt.datetime]) -> None:
    """Store requests created at the given instants (the stored form the recorder writes)."""
    docs = [
        request_document(
            validate_request(
                client, {"n": i, "session": session_key}, session_key, False, client_model=LLMClient
            ),
            record_id=ObjectId(),
            now=t,
        )
        for i, t in enumerate(times)
    ]
    await LLMClientRequest.get_pymongo_collection().insert_many(docs)


def minutes(*offsets: int) -> list[dt.datetime]:
    return [T0 + dt.timedelta(minutes=m) for m in offsets]


async def pages(web: httpx.AsyncClient, url: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of a listing, following the cursors."""
    out: list[dict[str, Any]] = []
    after = None
    while True:
        query = {**params, **({"after": after} if after else {})}
        response = await web.get(url, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        out.append(body)
        after = body["next_cursor"]
        if after is None:
            return out


# -- mounting is an explicit choice ------------------------------------------------------------


def test_the_router_needs_protection_or_an_explicit_public_flag() -> None:
    with pytest.raises(InvalidInput, match="public=True"):
        history_router()
    with pytest.raises(InvalidInput, match="choose one"):
        history_router(dependencies=[Depends(lambda: None)], public=True)
    with pytest.raises(InvalidInput, match=r"fastapi\.Depends"):
        history_router(dependencies=[lambda: None])  # type: ignore[list-item]
    with pytest.raises(InvalidInput, match="prefix must be"):
        history_router(public=True, prefix="llmreq/")
    with pytest.raises(InvalidInput, match="tags takes"):
        history_router(public=True, tags="history")
    for timeout in (0, -1, True, "5", float("nan")):
        with pytest.raises(InvalidInput, match="timeout must be a number of seconds"):
            history_router(public=True, timeout=timeout)  # type: ignore[arg-type]


async def test_an_application_dependency_protects_every_endpoint(
    llmreq_db: object, http: Http
) -> None:
    def require_api_key(x_api_key: Annotated[str | None, Header()] = None) -> None:
        if x_api_key != "s3cret":
            raise HTTPException(status_code=401, detail="missing or wrong API key")

    app = FastAPI()
    app.include_router(history_router(dependencies=[Depends(require_api_key)]), prefix="/h")
    urls = ["/h/clients", "/h/sessions", "/h/sessions/k/requests", "/h/usage", "/h/usage/clients"]
    async with http(app) as web:
        refused = [(await web.get(u)).status_code for u in urls]
        allowed = [(await web.get(u, headers={"x-api-key": "s3cret"})).status_code for u in urls]
    assert refused == [401] * len(urls)
    assert allowed == [200] * len(urls)


def test_the_api_is_documented_in_openapi() -> None:
    schema = public_app().openapi()
    ops = {path: set(item) for path, item in schema["paths"].items()}
    assert ops == {
        "/h/clients": {"get"},
        "/h/sessions": {"get"},
        "/h/sessions/{session_key}/requests": {"get"},
        "/h/requests": {"get"},
        "/h/usage": {"get"},
        "/h/usage/clients": {"get"},
    }
    sessions = schema["paths"]["/h/sessions"]["get"]
    ok = sessions["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/SessionPage"}
    assert {"400", "404", "422", "503"} <= set(sessions["responses"])
    assert {p["name"] for p in sessions["parameters"]} == {
        "client",
        "since",
        "until",
        "size",
        "after",
    }
    assert {"ClientPage", "RequestPage", "UsageOut", "ErrorOut"} <= set(
        schema["components"]["schemas"]
    )


# -- clients ----------------------------------------------------------------------------------


async def test_clients_are_listed_by_name_in_pages(llmreq_db: object, http: Http) -> None:
    for name in ["delta", "alpha", "echo", "charlie", "bravo"]:
        await LLMClient.objects.create(name=name)
    async with http(public_app()) as web:
        listing = await pages(web, "/h/clients", size=2)
    assert [[c["name"] for c in p["items"]] for p in listing] == [
        ["alpha", "bravo"],
        ["charlie", "delta"],
        ["echo"],
    ]


async def test_no_answer_may_be_kept_by_a_browser_or_a_proxy(client: LLMClient, http: Http) -> None:
    await seed(client, "s1", minutes(1, 2))
    async with http(public_app()) as web:
        for url in [
            "/h/clients",
            "/h/sessions",
            "/h/sessions/s1/requests",
            "/h/usage",
            "/h/usage/clients",
        ]:
            answer = await web.get(url)
            assert answer.status_code == 200, (url, answer.text)
            assert answer.headers["cache-control"] == "no-store", url


@pytest.mark.parametrize("key", [".", "..", "two\nlines"])
async def test_a_key_no_path_part_carries_is_read_from_its_requests_url(
    client: LLMClient, http: Http, key: str
) -> None:
    await seed(client, key, minutes(1, 2))
    await seed(client, "plain", minutes(3))
    async with http(public_app()) as web:
        (listed,) = [
            s for s in (await web.get("/h/sessions")).json()["items"] if s["session_key"] == key
        ]
        url = listed["requests_url"]
        assert url.startswith("/h/requests?session_key=")
        answer = await web.get(url)
        assert answer.status_code == 200, answer.text
        assert [r["session_key"] for r in answer.json()["items"]] == [key, key]
        assert (await web.get("/h/requests")).status_code == 422  # the key is required


# -- sessions ---------------------------------------------------------------------------------


async def test_sessions_page_by_last_activity_and_keep_a_snapshot(
    client: LLMClient, http: Http
) -> None:
    other = await LLMClient.objects.create(name="other-bot")
    await seed(client, "s1", minutes(0, 50))
    await seed(client, "s2", minutes(10, 20, 30))
    await seed(client, "s3", minutes(40))
    await seed(other, "s4", minutes(5, 45))
    await seed(client, None, minutes(60))  # no session: not a session
    async with http(public_app()) as web:
        first = (await web.get("/h/sessions", params={"size": 2})).json()
        assert [(s["session_key"], s["requests"]) for s in first["items"]] == [("s1", 2), ("s4", 2)]
        # New activity while paging: the listing keeps the snapshot the first page took.
        await seed(client, "s3", [dt.datetime.now(UTC)])
        await seed(client, "s9", [dt.datetime.now(UTC)])
        second = await web.get("/h/sessions", params={"size": 2, "after": first["next_cursor"]})
        second_body = second.json()
        assert [(s["session_key"], s["requests"]) for s in second_body["items"]] == [
            ("s3", 1),
            ("s2", 3),
        ]
        assert second_body["next_cursor"] is None
        s2 = second_body["items"][1]
        assert s2["first_at"] == "2026-03-01T22:40:00.000Z"
        assert s2["last_at"] == "2026-03-01T23:00:00.000Z"
        assert s2["llm_client_id"] == str(client.id)

        # a fresh listing sees the new activity (once the clock has left its millisecond)
        await asyncio.sleep(0.005)
        fresh = (await web.get("/h/sessions")).json()
        assert {s["session_key"] for s in fresh["items"][:2]} == {"s9", "s3"}
        # filters: client, window
        mine = await pages(web, "/h/sessions", client="other-bot", size=1)
        assert [[s["session_key"] for s in p["items"]] for p in mine] == [["s4"]]
        window = (
            await web.get(
                "/h/sessions",
                params={"since": "2026-03-01T22:35:00+00:00", "until": "2026-03-01T23:10:00Z"},
            )
        ).json()
        # [22:35, 23:10): s2 whole, s4's first request; s1 and s3 fall outside
        assert [(s["session_key"], s["requests"]) for s in window["items"]] == [
            ("s2", 3),
            ("s4", 1),
        ]


async def test_every_session_appears_once_across_pages_with_equal_activity_times(
    client: LLMClient, http: Http
) -> None:
    other = await LLMClient.objects.create(name="other-bot")
    for key in ["a", "b", "c", "d", "e"]:
        await seed(client, key, minutes(0))
        await seed(other, key, minutes(0))
    async with http(public_app()) as web:
        listing = await pages(web, "/h/sessions", size=3)
    seen = [(s["session_key"], s["llm_client_id"]) for p in listing for s in p["items"]]
    assert len(seen) == 10 and len(set(seen)) == 10
    assert [len(p["items"]) for p in listing] == [3, 3, 3, 1]


# -- a session's requests ---------------------------------------------------------------------


async def test_a_sessions_requests_page_in_order(client: LLMClient, http: Http) -> None:
    other = await LLMClient.objects.create(name="other-bot")
    await seed(client, "chat", minutes(*range(7)))
    await seed(other, "chat", minutes(3))
    await seed(client, "elsewhere", minutes(1))
    async with http(public_app()) as web:
        mine = await pages(web, "/h/sessions/chat/requests", client="support-bot", size=3)
        newest = await pages(web, "/h/sessions/chat/requests", order="desc", size=5)
    assert [[r["request"]["n"] for r in p["items"]] for p in mine] == [[0, 1, 2], [3, 4, 5], [6]]
    assert all(r["session_key"] == "chat" for p in mine for r in p["items"])
    newest_times = [r["created_at"] for p in newest for r in p["items"]]
    assert len(newest_times) == 8 and newest_times == sorted(newest_times, reverse=True)
    first = mine[0]["items"][0]
    assert set(first) == {
        "id",
        "llm_client_id",
        "session_key",
        "is_aggregation",
        "request",
        "response",
        "created_at",
    }
    assert first["created_at"] == "2026-03-01T22:30:00.000Z" and first["is_aggregation"] is False
    assert first["response"] is None  # recorded alone


async def test_each_request_carries_its_response(client: LLMClient, http: Http) -> None:
    answered = {
        "status": 200,
        "body": {"$weird.key": 1, "choices": [{"message": {"content": "Paris"}}]},
        "model": "gpt-4o-2024-08-06",
        "response_id": "chatcmpl-1",
        "finish_reasons": ["stop"],
        "usage": {"input_tokens": 31, "output_tokens": 12, "cache_read_input_tokens": 16},
        "stream": True,
        "latency_ms": 812.5,
        "ttft_ms": 120,
        "completed_at": dt.datetime(2026, 3, 1, 22, 30, 1, 250999, tzinfo=UTC),
    }
    failed = {"error": "ConnectError: [Errno 111] Connection refused", "latency_ms": 2}
    for i, response in enumerate([answered, failed, None]):
        await LLMClientRequest.objects.create(
            llm_client=client,
            request={"n": i},
            session_key="chat",
            response=response,
            created_at=T0 + dt.timedelta(seconds=i),
        )
    async with http(public_app()) as web:
        items = (await web.get("/h/sessions/chat/requests")).json()["items"]
    first, second, third = (item["response"] for item in items)
    assert first == {
        "status": 200,
        "body": {"$weird.key": 1, "choices": [{"message": {"content": "Paris"}}]},
        "model": "gpt-4o-2024-08-06",
        "response_id": "chatcmpl-1",
        "finish_reasons": ["stop"],
        # A count the provider did not report is null, never 0.
        "usage": {
            "input_tokens": 31,
            "output_tokens": 12,
            "total_tokens": None,
            "cache_read_input_tokens": 16,
            "cache_creation_input_tokens": None,
            "reasoning_output_tokens": None,
        },
        "error": None,
        "stream": True,
        "latency_ms": 812.5,
        "ttft_ms": 120.0,
        "completed_at": "2026-03-01T22:30:01.250Z",
        "truncated": False,
    }
    assert second["status"] is None and second["usage"] is None and second["body"] is None
    assert second["error"] == "ConnectError: [Errno 111] Connection refused"
    assert second["latency_ms"] == 2.0 and second["finish_reasons"] == []
    assert third is None


def test_openapi_describes_the_response_with_its_types() -> None:
    schemas = public_app().openapi()["components"]["schemas"]
    request = schemas["RequestOut"]
    assert "response" in request["required"]
    assert request["properties"]["response"]["anyOf"] == [
        {"$ref": "#/components/schemas/ResponseOut"},
        {"type": "null"},
    ]
    fields = schemas["ResponseOut"]["properties"]
    assert fields["latency_ms"]["type"] == "number"
    assert fields["finish_reasons"]["items"] == {"type": "string"}
    assert fields["completed_at"]["format"] == "date-time"
    assert {"type": "integer"} in fields["status"]["anyOf"]
    usage = schemas["TokenUsageOut"]["properties"]
    assert set(usage) == {
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "reasoning_output_tokens",
    }
    assert usage["input_tokens"]["anyOf"] == [{"type": "integer"}, {"type": "null"}]


async def test_bad_cursors_answer_400_with_a_clear_message(client: LLMClient, http: Http) -> None:
    await seed(client, "chat", minutes(0, 1, 2))
    await seed(client, "other", minutes(0, 1, 2))
    async with http(public_app()) as web:
        page = (await web.get("/h/sessions/chat/requests", params={"size": 1})).json()
        sessions = (await web.get("/h/sessions", params={"size": 1})).json()
        cursor = page["next_cursor"]
        flipped = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
        attempts = {
            "other session": ("/h/sessions/other/requests", cursor),
            "altered": ("/h/sessions/chat/requests", flipped),
            "truncated": ("/h/sessions/chat/requests", cursor[:-5]),
            "garbage": ("/h/sessions/chat/requests", "not a cursor!"),
            "sessions cursor for requests": ("/h/sessions/chat/requests", sessions["next_cursor"]),
            "requests cursor for sessions": ("/h/sessions", cursor),
            "clients": ("/h/clients", cursor),
        }
        for what, (url, after) in attempts.items():
            response = await web.get(url, params={"size": 1, "after": after})
            assert response.status_code == 400, what
            assert "cursor is not valid" in response.json()["detail"], what
        # the same cursor with different filters is refused too
        response = await web.get(
            "/h/sessions", params={"client": "support-bot", "after": sessions["next_cursor"]}
        )
        assert response.status_code == 400


@pytest.mark.parametrize(
    ("url", "params", "status", "detail"),
    [
        ("/h/sessions", {"since": "2026-03-01T10:00:00"}, 422, "timezone"),
        ("/h/sessions", {"until": "yesterday"}, 422, "datetime"),
        ("/h/sessions", {"size": 0}, 422, "greater than or equal"),
        ("/h/sessions", {"size": 201}, 422, "less than or equal"),
        (
            "/h/sessions",
            {"since": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"},
            400,
            "must be before until",
        ),
        ("/h/sessions", {"client": "nobody"}, 404, "no LLM client named 'nobody'"),
        ("/h/sessions/chat/requests", {"order": "sideways"}, 422, "asc"),
        ("/h/sessions/" + "k" * 256 + "/requests", {}, 422, "at most 255"),
        ("/h/usage", {"tz": "Mars/Olympus"}, 400, "unknown time zone"),
        ("/h/usage", {"by": "week"}, 422, "day"),
        ("/h/usage", {"since": "2026-03-01T10:00:00"}, 422, "timezone"),
        ("/h/usage/clients", {"until": "2026-03-01 10:00"}, 422, "timezone"),
        # instants that leave the calendar once converted to UTC
        ("/h/sessions", {"since": "0001-01-01T00:00:00+14:00"}, 422, "years 1 to 9999"),
        ("/h/sessions", {"until": "9999-12-31T23:59:59-14:00"}, 422, "years 1 to 9999"),
        ("/h/usage", {"since": "0001-01-01T00:00:00+14:00"}, 422, "years 1 to 9999"),
        ("/h/usage", {"until": "0001-01-01T00:00:00+00:01"}, 422, "years 1 to 9999"),
        ("/h/usage/clients", {"since": "9999-12-31T23:59:59-00:01"}, 422, "years 1 to 9999"),
    ],
)
async def test_parameters_are_validated(
    llmreq_db: object, http: Http, url: str, params: dict[str, Any], status: int, detail: str
) -> None:
    async with http(public_app()) as web:
        response = await web.get(url, params=params)
    assert response.status_code == status
    assert detail in response.text


# -- usage ------------------------------------------------------------------------------------


async def test_usage_counts_per_day_in_a_time_zone_and_per_client(
    client: LLMClient, http: Http
) -> None:
    other = await LLMClient.objects.create(name="other-bot")
    # 22:30 UTC on 1 March is 07:30 on 2 March in Tokyo
    await seed(client, "a", minutes(0, 10, 24 * 60 * 2))
    await seed(other, "b", minutes(20))
    async with http(public_app()) as web:
        utc = (await web.get("/h/usage", params={"client": "support-bot"})).json()
        tokyo = (await web.get("/h/usage", params={"tz": "Asia/Tokyo", "by": "day"})).json()
        hours = (
            await web.get(
                "/h/usage",
                params={
                    "by": "hour",
                    "since": "2026-03-01T22:00:00Z",
                    "until": "2026-03-02T01:00:00Z",
                },
            )
        ).json()
        per_client = (await web.get("/h/usage/clients")).json()
    assert utc["by"] == "day" and utc["tz"] == "UTC"
    assert [(b["start"][:10], b["count"]) for b in utc["buckets"]] == [
        ("2026-03-01", 2),
        ("2026-03-02", 0),
        ("2026-03-03", 1),
    ]
    # Tokyo's midnights, written in UTC as every time is
    assert [(b["start"], b["count"]) for b in tokyo["buckets"]] == [
        ("2026-03-01T15:00:00.000Z", 3),
        ("2026-03-02T15:00:00.000Z", 0),
        ("2026-03-03T15:00:00.000Z", 1),
    ]
    assert [b["count"] for b in hours["buckets"]] == [3, 0, 0]
    assert [(u["name"], u["requests"], u["sessions"]) for u in per_client] == [
        ("support-bot", 3, 1),
        ("other-bot", 1, 1),
    ]


async def test_a_one_sided_window_is_bounded_like_a_two_sided_one(
    client: LLMClient, http: Http
) -> None:
    await seed(client, "a", minutes(0))
    async with http(public_app()) as web:
        for params in (
            {"since": "0001-01-01T00:00:00Z"},
            {"until": "9999-12-31T23:59:59.999Z"},
            {"since": "2010-01-01T00:00:00Z", "by": "hour"},
        ):
            response = await web.get("/h/usage", params=params)
            assert response.status_code == 400, params
            assert "more than 100,000" in response.json()["detail"]


async def test_bounds_at_the_ends_of_the_calendar(client: LLMClient, http: Http) -> None:
    await seed(client, "a", minutes(0))
    async with http(public_app()) as web:
        # The last days a date holds are counted, up to 9999-12-31.
        last = await web.get(
            "/h/usage",
            params={"since": "9999-12-20T00:00:00Z", "until": "9999-12-31T23:59:59.999Z"},
        )
        assert last.status_code == 200, last.text
        assert [b["start"][:10] for b in last.json()["buckets"]][-2:] == [
            "9999-12-30",
            "9999-12-31",
        ]
        # A time zone whose local days would fall past them: refused, never a 500.
        past = await web.get(
            "/h/usage",
            params={
                "since": "9999-12-20T00:00:00Z",
                "until": "9999-12-31T23:00:00Z",
                "tz": "Pacific/Kiritimati",
            },
        )
    assert past.status_code == 400
    assert "outside years 1 to 9999" in past.json()["detail"]


# -- session keys of any shape ----------------------------------------------------------------

AWKWARD_KEYS = [
    "user/42",
    "a/b/c/requests",
    "/leading",
    "trailing/",
    "100%",
    "%2F",
    "with space",
    "  padded  ",
    "a?b#c&d=e",
    "+plus+",
    "naïve ключ 鍵",
    "emoji 🎉",
]


async def test_session_keys_with_slashes_percent_spaces_and_unicode_open_by_their_url(
    client: LLMClient, http: Http
) -> None:
    for n, key in enumerate(AWKWARD_KEYS):
        await seed(client, key, minutes(n, n))
    async with http(public_app()) as web:
        listing = [s for p in await pages(web, "/h/sessions", size=5) for s in p["items"]]
        assert sorted(s["session_key"] for s in listing) == sorted(AWKWARD_KEYS)
        for session in listing:
            key = session["session_key"]
            # the URL the listing gives, and the one a client builds from the key
            for url in (session["requests_url"], f"/h/sessions/{quote(key, safe='')}/requests"):
                response = await web.get(url)
                assert response.status_code == 200, (key, url, response.text)
                items = response.json()["items"]
                assert [r["session_key"] for r in items] == [key, key], (key, url)
                assert [r["request"]["session"] for r in items] == [key, key]
        # a slash may also be sent as it is
        plain = (await web.get("/h/sessions/user/42/requests")).json()["items"]
        assert [r["session_key"] for r in plain] == ["user/42", "user/42"]
    assert listing[0]["requests_url"] == (
        "/h/sessions/emoji%20%F0%9F%8E%89/requests?client=support-bot"
    )


async def test_the_requests_url_names_the_client_of_the_session(
    client: LLMClient, http: Http
) -> None:
    other = await LLMClient.objects.create(name="other bot/β")
    await seed(client, "shared/key", minutes(0))
    await seed(other, "shared/key", minutes(1, 2))
    async with http(public_app()) as web:
        listing = (await web.get("/h/sessions")).json()["items"]
        counts = {}
        for session in listing:
            page = (await web.get(session["requests_url"])).json()["items"]
            assert {r["llm_client_id"] for r in page} == {session["llm_client_id"]}
            counts[session["llm_client_id"]] = len(page)
    assert counts == {str(other.id): 2, str(client.id): 1}


# -- one time format --------------------------------------------------------------------------

ISO_MS_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def datetimes_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in datetimes_in(v) if k != "request"]
    if isinstance(value, list):
        return [t for v in value for t in datetimes_in(v)]
    if isinstance(value, str) and re.match(r"\d{4}-\d\d-\d\dT", value):
        return [value]
    return []


async def test_every_time_is_utc_to_the_millisecond(client: LLMClient, http: Http) -> None:
    at = dt.datetime(2026, 3, 1, 22, 30, 19, 970123, tzinfo=UTC)
    await seed(client, "chat", [at, at + dt.timedelta(seconds=1)])
    async with http(public_app()) as web:
        answers = {
            url: (await web.get(url, params={"tz": "Asia/Tokyo"} if url == "/h/usage" else {}))
            for url in (
                "/h/clients",
                "/h/sessions",
                "/h/sessions/chat/requests",
                "/h/usage",
                "/h/usage/clients",
            )
        }
    times = {url: datetimes_in(a.json()) for url, a in answers.items()}
    assert all(times.values()), times
    assert [t for ts in times.values() for t in ts if not ISO_MS_UTC.fullmatch(t)] == []
    assert answers["/h/sessions/chat/requests"].json()["items"][0]["created_at"] == (
        "2026-03-01T22:30:19.970Z"
    )
    session = answers["/h/sessions"].json()["items"][0]
    assert (session["first_at"], session["last_at"]) == (
        "2026-03-01T22:30:19.970Z",
        "2026-03-01T22:30:20.970Z",
    )
    # the day starting at midnight in Tokyo, written in UTC
    assert answers["/h/usage"].json()["buckets"][0]["start"] == "2026-03-01T15:00:00.000Z"


def test_openapi_still_describes_the_times_as_date_time_strings() -> None:
    schemas = public_app().openapi()["components"]["schemas"]
    fields = {
        "ClientOut": ["created_at", "updated_at"],
        "SessionOut": ["first_at", "last_at"],
        "RequestOut": ["created_at"],
        "UsageBucketOut": ["start"],
        "ClientUsageOut": ["first_at", "last_at"],
    }
    for model, names in fields.items():
        for name in names:
            prop = schemas[model]["properties"][name]
            assert (prop["type"], prop["format"]) == ("string", "date-time"), (model, name)
    assert schemas["SessionOut"]["properties"]["requests_url"]["type"] == "string"
