"""The ``llmreq`` console script: the engine's head start, then the command line.

The command line takes about half a second to import. Before importing it,
:func:`main` asks ``_head_start`` whether this run will open the default
embedded store and, if so, spawns the engine's child process, which then
starts while the imports run. This module and what it imports first use the
standard library only.
"""

from __future__ import annotations

import os
import sys

from llmreq_mongo import _head_start

__all__ = ["main"]


def main() -> None:
    """Run ``llmreq`` with the process's arguments; it ends the process (``SystemExit``)."""
    _head_start.begin(sys.argv[1:], os.environ)
    from llmreq_mongo._cli import main as command_line

    command_line()
