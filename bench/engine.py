"""How long the embedded engine takes to stop, and what a CLI command costs on it.

Prints, as medians of several runs in this process:

- the engine's own ``stop()`` against ours (the listening socket shut down
  first), in-process and as a child process (baseline: SecantusDB's launcher,
  ``python -m secantus``, stopped with SIGTERM);
- ``llmreq clients`` on an embedded store, run as the console script runs it
  (``python -m llmreq_mongo``, with the engine's head start), against
  ``llmreq --help`` (the interpreter and imports alone) as the baseline, and
  the same command through a running ``llmreq serve``; the embedded figure is printed against
  its target, under 1 s (:data:`TARGET`).

Run: ``.venv/bin/python bench/engine.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from secantus import SecantusDBServer

import _markdown
from llmreq_mongo.embedded import EmbeddedMongo

CLI = [sys.executable, "-m", "llmreq_mongo"]
#: Seconds ``llmreq clients`` may take on its own embedded store.
TARGET = 1.0
_CHILD_PATIENCE = 15.0
#: Baseline child stops that did not end within the patience and were killed.
HUNG: list[Path] = []


def median_of(runs: int, once: Callable[[], float]) -> float:
    return statistics.median(once() for _ in range(runs))


def engine_stop_plain(path: Path) -> float:
    logging.getLogger("secantus.storage.close").setLevel(logging.CRITICAL)
    server = SecantusDBServer(storage_path=str(path), port=0)
    server.start()
    began = time.perf_counter()
    server.stop()
    return time.perf_counter() - began


def engine_stop_ours(path: Path, *, process: bool) -> float:
    async def once() -> float:
        engine = EmbeddedMongo(path, process=process)
        await engine.start()
        began = time.perf_counter()
        await engine.stop()
        return time.perf_counter() - began

    return asyncio.run(once())


def child_stop_plain(path: Path) -> float:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--storage-path", str(path)]
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    began = time.perf_counter()
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=_CHILD_PATIENCE)
    except subprocess.TimeoutExpired:  # its SIGTERM handler can hang: count the wait
        HUNG.append(path)
        child.kill()
        child.wait()
    return time.perf_counter() - began


def command(args: list[str], cwd: Path) -> float:
    began = time.perf_counter()
    subprocess.run(CLI + args, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    _markdown.add_option(parser)
    args = parser.parse_args()
    runs = args.runs
    with tempfile.TemporaryDirectory(prefix="llmreq-bench-") as tmp:
        root = Path(tmp)
        rows = [
            (
                "in-process stop, engine's own",
                median_of(runs, lambda: engine_stop_plain(root / "a")),
            ),
            (
                "in-process stop, ours",
                median_of(runs, lambda: engine_stop_ours(root / "b", process=False)),
            ),
            (
                "child stop, secantus launcher",
                median_of(runs, lambda: child_stop_plain(root / "c")),
            ),
            (
                "child stop, ours",
                median_of(runs, lambda: engine_stop_ours(root / "d", process=True)),
            ),
        ]
        subprocess.run(
            [*CLI, "demo", "--requests", "60"], cwd=root, check=True, capture_output=True
        )
        baseline = median_of(runs, lambda: command(["--help"], root))
        clients = median_of(runs, lambda: command(["clients"], root))
        serve = subprocess.Popen([*CLI, "serve"], cwd=root, stdout=subprocess.PIPE, text=True)
        assert serve.stdout is not None
        serve.stdout.readline()  # the URI: it is serving
        try:
            served = median_of(runs, lambda: command(["clients"], root))
        finally:
            serve.send_signal(signal.SIGINT)
            serve.wait()
        rows += [
            ("llmreq --help (baseline)", baseline),
            ("llmreq clients, embedded store", clients),
            ("llmreq clients, through llmreq serve", served),
        ]
    fragment = _markdown.capture(args.markdown)
    print(f"medians of {runs} runs\n")
    if HUNG:
        print(f"({len(HUNG)} launcher stops hung, killed after {_CHILD_PATIENCE:g} s)\n")
    _markdown.table(["measure", "seconds"], [(name, f"{seconds:.3f}") for name, seconds in rows])
    in_process, child = rows[0][1] / rows[1][1], rows[2][1] / rows[3][1]
    print(
        f"\n`clients` over `--help`: {clients / baseline:.2f}x, served: {served / baseline:.2f}x; "
        f"stop speed-up: in-process {in_process:.0f}x, child {child:.0f}x"
    )
    verdict = "met" if clients < TARGET else "NOT met"
    print(f"target: llmreq clients on its embedded store under {TARGET:g} s: {verdict}")
    fragment.write()


if __name__ == "__main__":
    main()
