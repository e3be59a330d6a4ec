"""The spill file against hostile contents and a hostile disk, with MongoDB up.

Bad lines, torn tails, a full file system, an unwritable ``.corrupt``, a
read-only spill directory, a second recorder on the same file (in this
process and in another), a file from another database, and records the
driver cannot encode: none of them may stop the recorder or lose a record
quietly.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bson import DBRef, ObjectId

import recorder_helpers
from llmreq_mongo import Handle, InvalidInput, LLMClient, LLMClientRequest, Recorder
from llmreq_mongo._recording.spill import SpillReader, append_records, corrupt_path
from llmreq_mongo.errors import RecordRejected, SpillFileInUse, SpillFileMismatch
from llmreq_mongo.pytest_plugin import TestServer
from recorder_helpers import stored_ids

# This module's waits give up after 20 s.
wait_until = functools.partial(recorder_helpers.wait_until, seconds=20.0)

UTC = dt.timezone.utc


def stored_doc(client: LLMClient, n: int, session_key: str = "spilled") -> dict[str, Any]:
    """A document shaped as the recorder stores it."""
    now = dt.datetime.now(UTC).replace(microsecond=0)
    assert client.id is not None
    return {
        "_id": ObjectId(),
        "created_at": now,
        "updated_at": now,
        "llm_client_id": client.id,
        "request": {"n": n},
        "session_key": session_key,
        "is_aggregation": False,
    }


def namespace_of(handle: Handle) -> str:
    return f"{handle.database.name}.{LLMClientRequest.get_collection_name()}"


# -- a torn tail, a failed append ----------------------------------------------------


def test_a_torn_tail_does_not_swallow_the_next_record(tmp_path: Path) -> None:
    spill = tmp_path / "spill.jsonl"
    first = {"_id": ObjectId(), "request": {"n": 1}}
    second = {"_id": ObjectId(), "request": {"n": 2}}
    append_records(spill, [first])
    with spill.open("ab") as file:
        file.write(b'{"_id": {"$oid": "6b0a0a54ace6e4')  # a crash mid-append
    append_records(spill, [second])
    append_records(spill, [{"_id": ObjectId()}])  # the torn line is set aside once
    reader = SpillReader(spill)
    assert [doc["_id"] for doc in reader.read(10)][:2] == [first["_id"], second["_id"]]
    assert reader.corrupt == 0
    assert corrupt_path(spill).read_bytes() == b'{"_id": {"$oid": "6b0a0a54ace6e4\n'


def test_a_failed_append_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    spill = tmp_path / "spill.jsonl"
    append_records(spill, [{"_id": ObjectId(), "request": {"n": 1}}])
    before = spill.read_bytes()
    # A child process with a file-size limit just above the file: the kernel
    # refuses the longer append (EFBIG). The limit is the whole process's, so
    # it must not be this one's, whose other writes (its output) would fail too.
    script = textwrap.dedent(
        f"""
        import pathlib, resource, signal, sys
        from bson import ObjectId
        from llmreq_mongo._recording.spill import append_records

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({len(before) + 20}, hard))
        try:
            big = {{"_id": ObjectId(), "request": {{"text": "x" * 10_000}}}}
            append_records(pathlib.Path({str(spill)!r}), [big])
        except OSError as exc:
            print("refused:", exc)
            sys.exit(0)
        sys.exit("the append was not refused")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "too large" in done.stdout, done.stdout
    assert spill.read_bytes() == before


# -- bad lines and housekeeping failures ---------------------------------------------


def bad_lines() -> list[bytes]:
    return [
        b'{"_id": {"$oid": "6b0a0a54ace6e445a6461234"}, "x": {"$numberDecimal": "abc"}}\n',
        b'{"_id": {"$oid": "6b0a0a54ace6e445a6461235"}, "x": {"$date": 1e400}}\n',
        b'{"_id": 1, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}\n",
    ]


async def test_bad_lines_go_to_corrupt_and_recording_goes_on(
    client: LLMClient, tmp_path: Path
) -> None:
    spill = tmp_path / "spill.jsonl"
    good = [stored_doc(client, n) for n in range(2)]
    append_records(spill, good[:1])
    with spill.open("ab") as file:
        file.write(b"".join(bad_lines()))
    append_records(spill, good[1:])
    async with Recorder(spill_path=spill) as recorder:
        await wait_until(lambda: not spill.exists())
        later = recorder.record(client, {"n": 9}, session_key="spilled")
        await recorder.flush()
        stats = recorder.stats
    assert await stored_ids("spilled") == sorted([*(d["_id"] for d in good), later])
    assert stats.failed == 3 and stats.replayed == 2
    assert corrupt_path(spill).read_bytes().splitlines(keepends=True) == bad_lines()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("session_key", 123),
        ("session_key", "k" * 256),
        ("created_at", "2026-01-01T00:00:00Z"),
        ("is_aggregation", "yes"),
        ("llm_client_id", "6b0a0a54ace6e445a6461234"),
        ("response", ["not", "a", "response"]),
    ],
)
async def test_a_line_edited_into_other_types_goes_to_corrupt_not_to_mongodb(
    client: LLMClient, tmp_path: Path, field: str, value: Any
) -> None:
    spill = tmp_path / "spill.jsonl"
    good, edited = stored_doc(client, 1), stored_doc(client, 2)
    for doc in (good, edited):  # whole records, as the recorder spills them
        doc["llm_client"] = DBRef(LLMClient.get_collection_name(), client.id)
    edited[field] = value
    append_records(spill, [good, edited])
    async with Recorder(spill_path=spill) as recorder:
        await wait_until(lambda: not spill.exists())
        await recorder.flush()
        stats = recorder.stats
    assert await stored_ids("spilled") == [good["_id"]]
    assert stats.replayed == 1 and stats.failed == 1
    assert str(edited["_id"]) in corrupt_path(spill).read_text()
    # Every read of the session still works: the edited line never reached MongoDB.
    assert len(await LLMClientRequest.objects.for_session("spilled").to_list()) == 1


async def test_an_unwritable_corrupt_file_is_counted_and_the_spill_file_kept(
    client: LLMClient, tmp_path: Path
) -> None:
    spill = tmp_path / "spill.jsonl"
    corrupt_path(spill).mkdir()  # a .corrupt that cannot be written
    good = stored_doc(client, 1)
    append_records(spill, [good])
    with spill.open("ab") as file:
        file.write(bad_lines()[0])
    async with Recorder(spill_path=spill) as recorder:
        await wait_until(lambda: recorder.stats.housekeeping_errors > 0)
        await wait_until(lambda: recorder.stats.replayed == 1)
        later = recorder.record(client, {"n": 2}, session_key="spilled")
        await recorder.flush()
    assert await stored_ids("spilled") == sorted([good["_id"], later])
    assert bad_lines()[0] in spill.read_bytes()  # kept: it is nowhere else


async def test_a_read_only_spill_directory_does_not_stop_the_recorder(
    client: LLMClient, tmp_path: Path, immutable: Callable[[Path], None]
) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    spill = folder / "spill.jsonl"
    good = stored_doc(client, 1)
    append_records(spill, [good])
    immutable(folder)  # no lock file, no removal: chores fail, recording goes on
    async with Recorder(spill_path=spill) as recorder:
        await wait_until(lambda: recorder.stats.replayed == 1)
        later = recorder.record(client, {"n": 2}, session_key="spilled")
        await recorder.flush()
        assert recorder.stats.housekeeping_errors >= 2
    assert await stored_ids("spilled") == sorted([good["_id"], later])
    assert spill.read_bytes() == b""  # emptied, since it could not be removed


async def test_a_spill_directory_that_does_not_exist_is_refused_at_start(
    client: LLMClient, tmp_path: Path
) -> None:
    spill = tmp_path / "no-such-folder" / "spill.jsonl"
    recorder = Recorder(spill_path=spill)  # built before the folder: checked at start
    with pytest.raises(InvalidInput, match=r"the directory .*no-such-folder does not exist"):
        await recorder.start()
    # Nothing started, and nothing was created: once the folder exists, the same one starts.
    assert not spill.parent.exists()
    spill.parent.mkdir()
    async with recorder:
        recorder.record(client, {"n": 1}, session_key="spilled")
    assert len(await stored_ids("spilled")) == 1


# -- records the driver cannot encode ------------------------------------------------


async def test_lone_surrogates_are_refused_before_anything_is_queued(client: LLMClient) -> None:
    with pytest.raises(InvalidInput, match="surrogate"):
        await LLMClientRequest.objects.create(llm_client=client, request={}, session_key="\ud800")
    async with Recorder() as recorder:
        with pytest.raises(InvalidInput, match="surrogate"):
            recorder.record(client, {}, session_key="a\ud800b")
        with pytest.raises(InvalidInput, match="surrogate"):
            recorder.record(client, {"text": "\udfff"})
        assert recorder.stats.accepted == 0
    assert await LLMClientRequest.objects.count() == 0


async def test_a_record_that_cannot_be_encoded_fails_alone(
    client: LLMClient, tmp_path: Path
) -> None:
    # A spill file written by an older version could hold one: replaying it
    # must not stop this recorder, nor the next.
    spill = tmp_path / "spill.jsonl"
    good = [stored_doc(client, n) for n in range(2)]
    bad = stored_doc(client, 99)
    bad["session_key"] = "\ud800"
    append_records(spill, [good[0], bad, good[1]])
    rejected: list[tuple[dict[str, Any], RecordRejected]] = []
    async with Recorder(spill_path=spill, on_error=lambda d, e: rejected.append((d, e))) as rec:
        await wait_until(lambda: not spill.exists())
        later = rec.record(client, {"n": 5}, session_key="spilled")
        await rec.flush()
        stats = rec.stats
    assert await stored_ids("spilled") == sorted([*(d["_id"] for d in good), later])
    assert [doc["_id"] for doc, _ in rejected] == [bad["_id"]]
    assert "encoded" in str(rejected[0][1])
    assert stats.failed == 1 and stats.replayed == 2


# -- one recorder per file ---------------------------------------------------------------


async def test_a_second_recorder_on_the_same_file_is_refused(
    client: LLMClient, tmp_path: Path
) -> None:
    spill = tmp_path / "shared.spill"
    async with Recorder(spill_path=spill) as first:
        second = Recorder(spill_path=str(spill))
        with pytest.raises(SpillFileInUse, match=r"\{pid\}") as info:
            await second.start()
        assert info.value.path == spill and str(spill) in str(info.value)
        first.record(client, {"n": 1}, session_key="lock")
        await first.flush()
    async with Recorder(spill_path=spill):  # free again once the first stopped
        pass
    assert len(await stored_ids("lock")) == 1


async def test_a_file_named_by_another_path_is_the_same_file(
    client: LLMClient, tmp_path: Path
) -> None:
    spill = tmp_path / "real" / "shared.spill"
    spill.parent.mkdir()
    (tmp_path / "link.spill").symlink_to(spill)
    (tmp_path / "dir").symlink_to(spill.parent)
    async with Recorder(spill_path=spill):
        for other in (tmp_path / "link.spill", tmp_path / "dir" / "shared.spill"):
            with pytest.raises(SpillFileInUse):
                await Recorder(spill_path=other).start()


async def test_a_recorder_in_another_process_holds_the_file(
    llmreq_engine: TestServer, llmreq_db: Handle, tmp_path: Path
) -> None:
    spill = tmp_path / "shared.spill"
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        import llmreq_mongo
        from llmreq_mongo import Recorder

        async def main():
            handle = await llmreq_mongo.init(
                {llmreq_engine.uri!r}, database={llmreq_db.database.name!r}
            )
            async with Recorder(spill_path={str(spill)!r}):
                print("ready", flush=True)
                await asyncio.to_thread(sys.stdin.readline)
            await handle.close()

        asyncio.run(main())
        """
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert await asyncio.wait_for(child.stdout.readline(), 60) == b"ready\n"
        with pytest.raises(SpillFileInUse):
            await Recorder(spill_path=spill).start()
        child.stdin.write(b"done\n")
        await child.stdin.drain()
        assert await asyncio.wait_for(child.wait(), 60) == 0
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    async with Recorder(spill_path=spill):  # the child let it go
        pass


async def test_pid_in_the_spill_path_is_this_process(client: LLMClient, tmp_path: Path) -> None:
    mine = tmp_path / f"recorder-{os.getpid()}.spill"
    doc = stored_doc(client, 1)
    append_records(mine, [doc])
    async with Recorder(spill_path=tmp_path / "recorder-{pid}.spill") as recorder:
        await wait_until(lambda: not mine.exists())  # its own file, replayed
        assert recorder.stats.replayed == 1
    assert await stored_ids("spilled") == [doc["_id"]]


# -- a file of another database ------------------------------------------------------------


async def test_a_spill_file_of_another_database_is_refused_untouched(
    llmreq_db: Handle, client: LLMClient, tmp_path: Path
) -> None:
    spill = tmp_path / "tenant-a.spill"
    other = "tenant_a.llm_client_requests"
    append_records(spill, [stored_doc(client, n) for n in range(3)], other)
    before = spill.read_bytes()
    recorder = Recorder(spill_path=spill)
    with pytest.raises(SpillFileMismatch) as info:
        await recorder.start()
    assert info.value.found == [other]
    assert info.value.expected == namespace_of(llmreq_db)
    assert "tenant_a" in str(info.value) and "untouched" in str(info.value)
    assert spill.read_bytes() == before
    assert await stored_ids("spilled") == []
    second = Recorder(spill_path=spill)
    with pytest.raises(SpillFileMismatch):  # the lock was let go
        await second.start()


async def test_a_file_of_this_database_names_it_and_replays(
    llmreq_db: Handle, client: LLMClient, tmp_path: Path
) -> None:
    spill = tmp_path / "mine.spill"
    docs = [stored_doc(client, n) for n in range(3)]
    append_records(spill, docs[:2], namespace_of(llmreq_db))
    append_records(spill, docs[2:])  # a line of the older format, without a namespace
    async with Recorder(spill_path=spill) as recorder:
        await wait_until(lambda: not spill.exists())
        assert recorder.stats.replayed == 3
    assert await stored_ids("spilled") == sorted(d["_id"] for d in docs)


# -- options ----------------------------------------------------------------------------------


async def test_max_queue_smaller_than_the_default_batch(client: LLMClient) -> None:
    batches: list[list[ObjectId]] = []
    async with Recorder(max_queue=100, after_write=batches.append) as recorder:
        ids = [await recorder.arecord(client, {"n": n}, session_key="small") for n in range(250)]
        await recorder.flush()
    assert [i for batch in batches for i in batch] == ids
    assert max(len(batch) for batch in batches) <= 100
    assert await stored_ids("small") == sorted(ids)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"spill": "sometimes"}, "spill must be one of 'on_failure', 'always'"),
        ({"spill": "always"}, "give a spill_path"),
        ({"spill_path": "/tmp/llmreq-{worker}.spill"}, "only placeholder"),
        ({"max_queue": True}, "max_queue must be a positive integer, got True"),
        ({"stop_timeout": True}, "stop_timeout must be a finite number"),
    ],
)
def test_new_options_are_checked_at_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        Recorder(**options)
    assert message in str(info.value)
