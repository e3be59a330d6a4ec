"""``python -m llmreq_mongo._cli``: the ``llmreq`` command without the console script."""

from __future__ import annotations

from llmreq_mongo._cli import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
