"""The rule every router that shows recorded payloads follows: protected, or public on purpose."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import params

from llmreq_mongo.errors import InvalidInput

__all__ = ["checked_dependencies"]


def checked_dependencies(
    dependencies: Sequence[Any] | None, public: Any, *, what: str
) -> list[params.Depends]:
    """The router's dependencies, once the protection rule holds.

    Args:
        dependencies: what the caller passed (``Depends(...)`` objects).
        public: ``True`` to mount without any dependency on purpose.
        what: the router's name, for the messages (``"history_ui()"``).

    Raises:
        InvalidInput: neither dependencies nor ``public=True``, both, a
            ``public`` that is not a bool, or a dependency that is not
            ``fastapi.Depends(...)``.
    """
    deps = list(dependencies or ())
    if not isinstance(public, bool):
        raise InvalidInput(f"public must be True or False, got {public!r}")
    if not deps and not public:
        raise InvalidInput(
            f"{what} exposes every recorded request: pass "
            "dependencies=[Depends(your_auth_check)] to protect it, or public=True to "
            "mount it without protection on purpose"
        )
    if deps and public:
        raise InvalidInput(f"{what} got dependencies and public=True; choose one")
    for dep in deps:
        if not isinstance(dep, params.Depends):
            raise InvalidInput(
                f"dependencies takes fastapi.Depends(...) objects, got a {type(dep).__name__}"
            )
    return deps
