"""Collect the examples of README.md and docs/*.md as tests.

The rules they follow are in tests/doc_examples.py and docs/writing-docs.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))

from doc_examples import collector, pytest_runtest_makereport

pytest_collect_file = collector()
__all__ = ["pytest_collect_file", "pytest_runtest_makereport"]
