"""``python -m llmreq_mongo``: the ``llmreq`` command, as the console script runs it."""

from __future__ import annotations

from llmreq_mongo._launch import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
