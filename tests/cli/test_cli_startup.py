"""What starting ``llmreq`` costs: the command line imports only what the command needs.

The web server (uvicorn, FastAPI), the progress bars and the embedded engine
are imported by the commands that use them, when they run, so that a short
command such as ``llmreq clients`` does not pay for them at every start. The
console script registers only the command it runs, so ``llmreq clients``
does not import the modules of the other commands either (the recorder, the
demo's conversations, the export's and the import's readers). What runs
before the engine's head start is spawned imports the standard library only,
which needs a top-level package that imports each public name on first use.
"""

from __future__ import annotations

import json
import subprocess
import sys

#: Modules only some commands use: none of them may be loaded by the command line itself.
ON_DEMAND = ["uvicorn", "fastapi", "rich.progress", "secantus"]
#: Modules ``llmreq clients`` does not use, which other commands do.
NOT_FOR_CLIENTS = [
    "llmreq_mongo._cli._demo",
    "llmreq_mongo._cli._export",
    "llmreq_mongo._cli._import",
    "llmreq_mongo._cli._records",
    "llmreq_mongo._cli._retention",
    "llmreq_mongo._cli._serve",
    "llmreq_mongo._cli._ui",
    "llmreq_mongo._cli._timeline",
    "llmreq_mongo._cli._answers",
    "llmreq_mongo._recording",
    "llmreq_mongo._reports.answers",
    "llmreq_mongo._reports.latency",
    "llmreq_mongo.analytics",
    "llmreq_mongo._reports.rollups",
    "llmreq_mongo._sharding",
]
#: Third-party libraries the head start must not wait for.
HEAVY = ["pydantic", "beanie", "pymongo", "bson", "typer", "rich"]
#: Standard modules the head start does without, so that the engine starts sooner.
AVOIDED = ["typing", "dataclasses", "pathlib", "logging"]


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    loaded: list[str] = json.loads(proc.stdout.splitlines()[-1])
    return loaded


def test_the_package_imports_a_name_when_it_is_first_used() -> None:
    loaded = _loaded_after("import llmreq_mongo")
    assert [m for m in loaded if m.startswith("llmreq_mongo.")] == []
    assert "pydantic" not in loaded and "pymongo" not in loaded
    loaded = _loaded_after("from llmreq_mongo import StorageError")
    assert "llmreq_mongo.errors" in loaded
    assert "llmreq_mongo._recording" not in loaded


def test_the_command_line_imports_no_module_that_only_some_commands_use() -> None:
    loaded = _loaded_after("from llmreq_mongo._cli import app")
    assert "llmreq_mongo._cli._ui" in loaded  # every command is registered
    assert [m for m in ON_DEMAND if m in loaded] == []


def test_the_console_script_registers_only_the_command_it_runs() -> None:
    loaded = _loaded_after(
        "import sys\n"
        "sys.argv = ['llmreq', '--json', 'clients', '--help']\n"
        "from llmreq_mongo._cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass"
    )
    assert "llmreq_mongo._cli._inspect" in loaded
    assert [m for m in ON_DEMAND + NOT_FOR_CLIENTS if m in loaded] == []


def test_the_console_script_registers_every_command_when_it_cannot_tell() -> None:
    for argv in (["--help"], ["clinets"], []):
        loaded = _loaded_after(
            "import sys\n"
            f"sys.argv = ['llmreq', *{argv!r}]\n"
            "from llmreq_mongo._cli import main\n"
            "try:\n"
            "    main()\n"
            "except SystemExit:\n"
            "    pass"
        )
        assert "llmreq_mongo._cli._ui" in loaded, argv


def test_the_head_start_imports_the_standard_library_only() -> None:
    loaded = _loaded_after("import llmreq_mongo._launch, llmreq_mongo._head_start")
    ours = sorted(m for m in loaded if m.startswith("llmreq_mongo"))
    assert ours == [
        "llmreq_mongo",
        "llmreq_mongo._engine_process",
        "llmreq_mongo._head_start",
        "llmreq_mongo._launch",
        "llmreq_mongo._local_store",
    ]
    assert [m for m in HEAVY + AVOIDED if m in loaded] == []


def test_the_command_runs_with_the_collector_on_and_the_imports_frozen() -> None:
    probe = (
        "import gc, sys\n"
        "import llmreq_mongo._cli as cli, llmreq_mongo._cli._app as app\n"
        "seen = []\n"
        "app.main = lambda: seen.append((gc.isenabled(), gc.get_freeze_count() > 0))\n"
        "sys.argv = ['llmreq', 'clients']\n"
        "cli.main()\n"
        "print(seen)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert proc.stdout.strip() == "[(True, True)]"
