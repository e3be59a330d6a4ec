"""Shared test helpers. The ``llmreq_engine`` and ``llmreq_db`` fixtures come
from the package's own pytest plugin, exactly as users get them."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llmreq_mongo import LLMClient


@pytest.fixture
async def client(llmreq_db: object) -> LLMClient:
    """A saved LLM client in a fresh database."""
    return await LLMClient.objects.create(name="support-bot", description="answers tickets")


@pytest.fixture
def immutable() -> Iterator[Callable[[Path], None]]:
    """Make a directory read-only even for root (``chattr +i``), and undo it afterwards."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is needed to make a directory read-only for every user")
    made: list[Path] = []

    def make(path: Path) -> None:
        subprocess.run(["chattr", "+i", str(path)], check=True)
        made.append(path)

    try:
        yield make
    finally:
        for path in made:
            subprocess.run(["chattr", "-i", str(path)], check=True)
