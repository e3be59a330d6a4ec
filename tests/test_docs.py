"""The rules the examples of README.md and docs/ follow (tests/doc_examples.py).

The examples themselves run as Sybil items of their pages; these tests check
what keeps that honest: no example skipped without a reason, the console
comparison matching only what it should, and the README's promises (its
length, its two-command Quick start, the test command CI runs).
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest

from doc_examples import PATTERNS, ROOT, commands, output_matches

README = ROOT / "README.md"
SKIP = re.compile(r"<!--\s*skip:\s*(?P<action>\w+)(?P<rest>[^>]*?)-->")


def pages() -> list[Path]:
    found = sorted({path for pattern in PATTERNS for path in ROOT.glob(pattern)})
    assert README in found and len(found) > 10
    return found


def test_every_skip_has_a_reason() -> None:
    marked = 0
    for page in pages():
        for skip in SKIP.finditer(page.read_text(encoding="utf-8")):
            if skip["action"] == "end":
                continue
            reason = skip["rest"].strip()
            where = f"{page.relative_to(ROOT)}: {skip[0]}"
            assert skip["action"] in ("next", "start"), where
            assert re.fullmatch(r'"[^"]{10,}"', reason), f"say why it cannot run: {where}"
            marked += 1
    assert marked > 0


def test_the_readme_is_short_and_its_quick_start_is_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quick, re.S)
    assert block is not None
    assert block[1].splitlines() == [
        'python3 -m venv .venv && .venv/bin/pip install -e ".[embedded]" && .venv/bin/llmreq demo',
        'python3 -m venv .venv && .venv/bin/pip install -e ".[dev]" && .venv/bin/python -m pytest',
    ]


def test_the_readme_states_the_test_command_ci_runs() -> None:
    tests = README.read_text(encoding="utf-8").split("## Tests", 1)[1].split("\n## ", 1)[0]
    stated = re.search(r"Tests: `(python -m pytest[^`]*)`", tests)
    assert stated is not None, "the README's Tests section states the command"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    ran = re.findall(r'^"\$venv/bin/python" (-m pytest.*)$', ci, re.M)
    assert [f"python {command}" for command in ran] == [stated[1]]


@pytest.mark.parametrize(
    ("shown", "printed"),
    [
        ("exported 2 requests", "exported 2 requests\n"),
        ("id <id> at <time>", "id 6634b9427da6db700edbdb6b at 2024-05-03T10:15:30.250Z"),
        ("took <duration> (<n>/s)", "took 1.02 s (1,080/s)"),
        (" a │       <n> │ b", " a │       1234 │ b"),
        ("first\n…\nlast", "first\nx\ny\nlast"),
        ("first\n…\nlast", "first\nlast"),
        ("head\n…", "head\nmore\nlines"),
        ("trailing", "trailing   \n"),
    ],
)
def test_output_matches_what_is_shown(shown: str, printed: str) -> None:
    assert output_matches(shown, printed)


@pytest.mark.parametrize(
    ("shown", "printed"),
    [
        ("exported 2 requests", "exported 3 requests"),
        ("exported 2 requests", "exported 2 requests\nand more"),
        ("a  b", "a b"),  # spaces count where no placeholder stands
        ("id <id>", "id 6634b942"),
        ("at <time>", "at yesterday"),
        ("<n> created", "many created"),
        ("first\n…\nlast", "first\nx"),
        ("(<n>.*)", "(1.*)x"),  # the rest of a line is literal, never a pattern
        ("", "something"),
    ],
)
def test_output_differing_from_what_is_shown_fails(shown: str, printed: str) -> None:
    assert not output_matches(shown, printed)


def test_console_blocks_split_into_commands_and_their_output() -> None:
    block = "$ llmreq a\none\ntwo\n$ llmreq b\n$ llmreq c\nthree\n"
    assert list(commands(block)) == [
        ("llmreq a", "one\ntwo"),
        ("llmreq b", ""),
        ("llmreq c", "three"),
    ]
    with pytest.raises(AssertionError, match="starts with a `\\$ ` command"):
        list(commands("output first\n$ llmreq a\n"))


def docstring_examples() -> list[tuple[str, str]]:
    """Every ``Example::`` block of the package's docstrings, with where it is."""
    found = []
    for path in sorted((ROOT / "src" / "llmreq_mongo").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(
                node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
            ):
                continue
            doc = ast.get_docstring(node, clean=True)
            for block in re.findall(
                r"^Example::\n\n((?:(?:    .*)?\n)+)", (doc or "") + "\n", re.M
            ):
                where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 1)}"
                found.append((where, textwrap.dedent(block)))
    return found


def test_docstring_examples_compile() -> None:
    """The API reference shows these; they are compiled here (the guide's run)."""
    examples = docstring_examples()
    assert len(examples) >= 20
    for where, source in examples:
        try:
            compile(source, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        except SyntaxError as error:
            pytest.fail(f"{where}: the docstring example does not compile: {error}")
