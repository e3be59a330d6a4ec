"""What starting ``llmreq`` costs: the command line imports only what every command needs.

The web server (uvicorn, FastAPI), the progress bars and the embedded engine
are imported by the commands that use them, when they run, so that a short
command such as ``llmreq clients`` does not pay for them at every start.
"""

from __future__ import annotations

import json
import subprocess
import sys

#: Modules only some commands use: none of them may be loaded by the command line itself.
ON_DEMAND = ["uvicorn", "fastapi", "rich.progress", "secantus"]


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    loaded: list[str] = json.loads(proc.stdout.splitlines()[-1])
    return loaded


def test_the_command_line_imports_no_module_that_only_some_commands_use() -> None:
    loaded = _loaded_after("import llmreq_mongo._cli")
    assert "llmreq_mongo._cli._ui" in loaded  # every command is registered
    assert [m for m in ON_DEMAND if m in loaded] == []
