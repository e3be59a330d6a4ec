"""Run the examples of README.md and docs/*.md as tests, with Sybil.

The root ``conftest.py`` hands :func:`collector` to pytest, so the README's
test command (``python -m pytest``) collects every page. The rules, which
docs/writing-docs.md explains to whoever adds an example:

- A ```` ```python ```` block runs. The blocks of one page run in order in
  one namespace and one event loop, as a reader would type them into
  ``python -m asyncio``: top-level ``await`` works. Each page gets a fresh
  database on the test server (the package's own ``llmreq_engine`` fixture):
  in a block, the URI ``"mongodb://localhost:27017"`` is replaced by the test
  server's and ``database="llmreq"`` by that database. The blocks run in a
  temporary directory of the page's own.
- A ```` ```console ```` block runs each ``$ `` line with bash, in the same
  directory, where ``llmreq serve`` is running on the page's embedded store
  (so ``llmreq`` commands without ``--uri`` use it), and compares what the
  command printed (stdout and stderr) with the lines under it. In the lines
  shown, ``<id>`` stands for an id (24 or 32 hex digits), ``<time>`` for a
  time, ``<duration>`` for a duration (``1.02 s``, ``35 ms``), ``<n>`` for a
  number that changes from run to run (a rate, a count of random demo data),
  and a line holding only ``…`` for any number of lines. Runs of spaces next
  to a placeholder match any run of spaces, as table columns widen.
- A fenced block with ``title="NAME"`` (```` ```json title="dump.json" ````)
  is written to the file NAME in that directory, for the commands after it.
- A block without a language, or in ``text``, shows output or a format and is
  not run.
- Any other block fails, unless ``<!-- skip: next "the reason" -->`` stands
  before it; Sybil then reports it as skipped with that reason. A skip without
  a reason fails (:func:`test_every_skip_has_a_reason` in
  ``tests/test_docs.py``).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import difflib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sybil import Document, Example, Region, Sybil
from sybil.parsers.markdown import SkipParser
from sybil.parsers.markdown.lexers import RawFencedCodeBlockLexer

ROOT = Path(__file__).resolve().parent.parent
#: The pages whose examples run.
PATTERNS = ["README.md", "docs/*.md"]
#: The literals a Python example names the test server by.
EXAMPLE_URI = '"mongodb://localhost:27017"'
EXAMPLE_DATABASE = 'database="llmreq"'
#: Languages of blocks that only show output or a format.
NOT_CODE = {"", "text"}

_INFO = re.compile(r'(?P<language>[\w+-]*)(?:[ \t]+title="(?P<title>[^"]+)")?[ \t]*$\n', re.M)

PLACEHOLDERS = {
    "<id>": r"[0-9a-f]{24}(?:[0-9a-f]{8})?",
    "<time>": r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d{3})?Z?",
    "<duration>": r"\d+(?:\.\d+)? ?(?:µs|ms|s)",
    "<n>": r"\d[\d,]*(?:\.\d+)?",
}
_PLACEHOLDER = re.compile("|".join(re.escape(p) for p in PLACEHOLDERS))
ANY_LINES = "…"


@dataclass
class Page:
    """What the examples of one page share: a loop, a database, a directory."""

    engine_uri: str
    database: str = field(default_factory=lambda: f"llmreq_docs_{uuid.uuid4().hex[:12]}")
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="llmreq-docs-")))
    server: subprocess.Popen[str] | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("LLMREQ_MONGODB_URI", "COLUMNS")}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["NO_COLOR"] = "1"
        return env

    def serve(self) -> None:
        """Start ``llmreq serve`` on the page's store, once."""
        if self.server is not None:
            return
        self.server = subprocess.Popen(
            ["llmreq", "serve"],
            cwd=self.workdir,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.server.stdout is not None
        line = self.server.stdout.readline()
        assert line.startswith("mongodb://"), f"llmreq serve did not start: {line!r}"

    def close(self, namespace: dict[str, Any]) -> None:
        try:
            self.loop.run_until_complete(_close_page(namespace, self))
        finally:
            self.loop.close()
            if self.server is not None:
                self.server.send_signal(signal.SIGTERM)
                self.server.wait(timeout=30)
                if self.server.stdout is not None:
                    self.server.stdout.close()
            shutil.rmtree(self.workdir, ignore_errors=True)


async def _close_page(namespace: dict[str, Any], page: Page) -> None:
    from pymongo import AsyncMongoClient

    from llmreq_mongo import Handle, Recorder

    for value in list(namespace.values()):
        if isinstance(value, Recorder):
            await value.stop()  # a no-op on a stopped recorder
        if isinstance(value, Handle):
            await value.close()
    client: AsyncMongoClient[Any] = AsyncMongoClient(page.engine_uri)
    try:
        await client.drop_database(page.database)
    finally:
        await client.close()


def _page(namespace: dict[str, Any]) -> Page:
    page = namespace.get("__page__")
    if page is None:
        page = namespace["__page__"] = Page(engine_uri=namespace["llmreq_engine"].uri)
    assert isinstance(page, Page)
    return page


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def run_python(example: Example) -> None:
    """Run a Python block in the page's namespace and loop."""
    page = _page(example.namespace)
    source = str(example.parsed)
    if EXAMPLE_URI in source:
        assert EXAMPLE_DATABASE in source, (
            f"an example that connects to {EXAMPLE_URI} names its database "
            f"({EXAMPLE_DATABASE}), so that the test can give it a fresh one"
        )
        source = source.replace(EXAMPLE_URI, repr(page.engine_uri))
        source = source.replace(EXAMPLE_DATABASE, f"database={page.database!r}")
    # Padding keeps the page's line numbers in tracebacks.
    code = compile(
        "\n" * (example.line + example.parsed.line_offset) + source,
        str(example.path),
        "exec",
        flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
    )
    # As in `python -m asyncio`: classes an example defines belong to __main__,
    # a module that exists (pydantic resolves a model's annotations through it).
    example.namespace.setdefault("__name__", "__main__")
    with _cwd(page.workdir):
        result = eval(code, example.namespace)  # the page's own example
        if asyncio.iscoroutine(result):
            page.loop.run_until_complete(result)


def _line_pattern(line: str) -> str:
    if not _PLACEHOLDER.search(line):
        return re.escape(line)
    parts = []
    for piece in re.split(f"({_PLACEHOLDER.pattern})", line):
        if piece in PLACEHOLDERS:
            parts.append(PLACEHOLDERS[piece])
        else:
            parts.append(re.sub(r"(?:\\ )+", " +", re.escape(piece)))
    return "".join(parts)


def output_matches(expected: str, actual: str) -> bool:
    """Whether ``actual`` is what ``expected`` shows, placeholders read as above."""
    lines = [line.rstrip() for line in expected.rstrip("\n").split("\n")] if expected else []
    pattern = ""
    for number, line in enumerate(lines):
        if line.strip() == ANY_LINES:
            pattern += r"(?:[^\n]*\n)*?"
        else:
            pattern += _line_pattern(line) + ("\n" if number < len(lines) - 1 else "")
    got = "\n".join(line.rstrip() for line in actual.rstrip("\n").split("\n")) if actual else ""
    if lines and lines[-1].strip() == ANY_LINES:
        got += "\n"
    return re.fullmatch(pattern, got) is not None


def commands(block: str) -> Iterable[tuple[str, str]]:
    """The ``$ `` commands of a console block, each with the output shown under it."""
    command: str | None = None
    shown: list[str] = []
    for line in block.rstrip("\n").split("\n"):
        if line.startswith("$ "):
            if command is not None:
                yield command, "\n".join(shown)
            command, shown = line[2:], []
        elif command is None:
            raise AssertionError(f"a console block starts with a `$ ` command, not {line!r}")
        else:
            shown.append(line)
    if command is not None:
        yield command, "\n".join(shown)


def run_console(example: Example) -> None:
    """Run each command of a console block and compare its output."""
    page = _page(example.namespace)
    page.serve()
    for command, shown in commands(str(example.parsed)):
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=page.workdir,
            env=page.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
            check=False,
        )
        if not output_matches(shown, done.stdout):
            diff = "\n".join(
                difflib.unified_diff(
                    shown.split("\n"), done.stdout.rstrip("\n").split("\n"), "shown", "printed"
                )
            )
            raise AssertionError(f"$ {command}\nprinted other than shown:\n{diff}")


def write_file(example: Example) -> None:
    """Write a block titled with a file name to that file, for the commands after it."""
    page = _page(example.namespace)
    name, content = example.parsed
    (page.workdir / name).write_text(content, encoding="utf-8")


def unclassified(example: Example) -> None:
    language = example.parsed
    raise AssertionError(
        f"a ```{language} block is neither run nor marked: make it a python or console "
        'example, or put <!-- skip: next "why it cannot run" --> before it'
    )


class FenceParser:
    """Every fenced block, each sent to the evaluator its language and title call for."""

    def __init__(self) -> None:
        self.lexer = RawFencedCodeBlockLexer(info_pattern=_INFO)

    def __call__(self, document: Document) -> Iterable[Region]:
        for region in self.lexer(document):
            language = region.lexemes["language"]
            title = region.lexemes["title"]
            source = region.lexemes["source"]
            evaluator: Callable[[Example], None]
            if title:
                region.parsed, evaluator = (title, str(source)), write_file
            elif language == "python":
                region.parsed, evaluator = source, run_python
            elif language == "console":
                region.parsed, evaluator = source, run_console
            elif language in NOT_CODE:
                continue
            else:
                region.parsed, evaluator = language, unclassified
            region.evaluator = evaluator
            yield region


def _teardown(namespace: dict[str, Any]) -> None:
    page = namespace.pop("__page__", None)
    if isinstance(page, Page):
        page.close(namespace)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Report a skipped example at its page and line, not where Sybil raised."""
    report = yield
    example = getattr(item, "example", None)
    if report.skipped and isinstance(example, Example) and isinstance(report.longrepr, tuple):
        _, _, reason = report.longrepr
        page = Path(example.path).relative_to(ROOT)
        report.longrepr = (str(page), example.line, reason)
    return report


def collector() -> Any:
    """The ``pytest_collect_file`` hook for the root ``conftest.py``."""
    return Sybil(
        parsers=[SkipParser(), FenceParser()],
        patterns=PATTERNS,
        path=str(ROOT),
        fixtures=["llmreq_engine"],
        teardown=_teardown,
        name="docs",
    ).pytest()
