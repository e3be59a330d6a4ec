"""``llmreq ui``: serves the history browser, refuses remote addresses, stops on Ctrl-C."""

from __future__ import annotations

import signal

import httpx
import pytest
from procs import start

from llmreq_mongo._cli._ui import is_loopback


def test_serves_the_pages_and_stops_on_ctrl_c(cli, tmp_path):
    cli.db["llm_clients"].insert_one({"name": "cli-bot", "description": "", "metadata": {}})
    ui = start("--uri", cli.uri, "--database", cli.database, "ui", "--port", "0", cwd=tmp_path)
    try:
        url = ui.out.get(timeout=60)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/"), url
        assert "serving the request history at " + url in ui.err_line(timeout=10)
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200
        assert "cli-bot" in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        assert httpx.post(url, timeout=30).status_code == 405
    finally:
        try:
            code, leftover = ui.stop(signal.SIGINT)  # Ctrl-C
        finally:
            if ui.proc.poll() is None:
                ui.proc.kill()
                ui.proc.wait()
    # Like every command: Ctrl-C ends it with status 130 and one line on stderr.
    assert code == 130, leftover
    assert len(leftover) == 1 and leftover[0].startswith("interrupted after "), leftover


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.com"])
def test_a_remote_address_needs_allow_remote(cli, host):
    result = cli("ui", "--host", host, ok=False)
    assert result.exit_code == 2
    assert f"refusing to serve on {host}" in result.stderr
    assert "--allow-remote" in result.stderr


def test_a_port_in_use_is_one_clear_line(cli):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = cli("ui", "--port", str(port), ok=False)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}")


def test_loopback_names() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "example.com", ""))
