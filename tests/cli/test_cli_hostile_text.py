"""What was recorded never acts on the reader's terminal.

A session key, a client's name or a message holding an escape sequence is
printed with each control character written out (``[U+001B]``): ``ESC [2J``
would clear the screen, ``ESC ]0;...`` set the window's title, and a C1
``CSI`` (U+009B) is an escape on its own in many terminals. ``--json`` gives
the values as they are (JSON escapes them), for programs.
"""

from __future__ import annotations

import datetime as dt
import io

import pytest
from bson import ObjectId
from clitools import UTC, chat, export_record, write_jsonl
from rich.text import Text

from llmreq_mongo._cli._app import _Output
from llmreq_mongo._cli._follow import _line

ESC, CSI = "\x1b", "\x9b"
KEY = f"k{ESC}[2Jx"
CLIENT = (ObjectId(), f"evil{ESC}[31mbot\non two lines")
SAID = f"hi {ESC}]0;pwned{ESC}\\ there\nand {CSI}5m on a second line"
NOW = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(minutes=5)


@pytest.fixture
def hostile(cli, tmp_path):
    record = export_record(
        created_at=NOW, client=CLIENT, session_key=KEY, request=chat(("user", SAID))
    )
    cli("import", str(write_jsonl(tmp_path / "seed.jsonl", [record])))


def acts(text: str) -> bool:
    """Whether ``text`` holds a character a terminal would obey (but a newline)."""
    return any((ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) <= 0x9F for c in text)


@pytest.mark.parametrize("command", [("clients",), ("sessions",), ("show", KEY)])
def test_recorded_text_is_written_out_not_obeyed(cli, hostile, command) -> None:
    out = cli(*command).stdout
    assert not acts(out), repr(out)
    assert "[U+001B]" in out


def test_show_writes_out_the_escapes_and_keeps_the_message_lines(cli, hostile) -> None:
    out = cli("show", KEY).stdout
    # The heading names the client on its one line.
    assert "evil[U+001B][31mbot[U+000A]on two lines" in out.splitlines()[0]
    assert "hi [U+001B]]0;pwned[U+001B]\\ there" in out
    # The message's own newline is kept; the C1 escape on the next line is written out.
    assert "and [U+009B]5m on a second line" in out.splitlines()[2]


def test_sessions_and_clients_name_them_written_out(cli, hostile) -> None:
    assert "k[U+001B][2Jx" in cli("sessions").stdout
    assert "evil[U+001B][31mbot[U+000A]on two lines" in cli("clients").stdout


def test_json_gives_the_values_as_recorded(cli, hostile) -> None:
    (row,) = cli.json("sessions")
    assert row["session_key"] == KEY and row["llm_client"] == CLIENT[1]


def test_tail_lines_write_them_out() -> None:
    doc = {
        "created_at": NOW,
        "session_key": KEY,
        "request": chat(("user", SAID)),
    }
    line = _line(doc, CLIENT[1], as_json=False)
    assert not acts(line)
    assert "evil[U+001B][31mbot[U+000A]on two lines  k[U+001B][2Jx" in line


def test_the_consoles_own_styles_still_reach_a_terminal() -> None:
    out = io.StringIO()
    console = _Output(
        file=out, force_terminal=True, color_system="standard", width=80, highlight=False
    )
    console.print(Text("styled", style="red"), f"said {ESC}[2J", "tab\there")
    text = out.getvalue()
    assert f"{ESC}[31mstyled" in text  # Rich's escape for red, left alone
    assert "said [U+001B][2J" in text and f"{ESC}[2J" not in text
