"""The history browser: read-only HTML pages over the recorded requests.

Needs the ``ui`` extra (``pip install "llmreq-mongo[ui]"``: FastAPI and
Jinja2). Mount it with :func:`llmreq_mongo.integrations.fastapi.history_ui`,
or serve it on its own with ``llmreq ui``.

Pages (relative to where the router is mounted):

- ``/``: one row per client over 24 h, 7 d or 30 d, and a chart of calls.
- ``/sessions``: sessions, latest first, by client, window and key prefix.
- ``/sessions/{session_key}``: one session as a conversation (``/session?key=`` for
  the keys no path segment carries: ``.``, ``..``, one holding a newline).
- ``/requests/{id}``: one call, every field, its payloads as JSON.
"""

from __future__ import annotations

from llmreq_mongo.errors import ExtraMissing

try:
    import fastapi  # noqa: F401
    import jinja2  # noqa: F401
except ImportError as exc:
    raise ExtraMissing("ui", feature="llmreq_mongo.integrations.ui") from exc

from llmreq_mongo.integrations.ui.pages import SECURITY_HEADERS, build_router, http_error_handler

__all__ = ["SECURITY_HEADERS", "build_router", "http_error_handler"]
