"""The manager of request documents: the generic one, plus sessions.

``for_session`` belongs here rather than on the generic :class:`Manager`
because only request documents have sessions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from llmreq_mongo._checks import check_bool, check_session_key, client_ref
from llmreq_mongo._queries import RAW_ONLY, Manager, ManagerDescriptor, QuerySet, field_specs
from llmreq_mongo._types import ClientRef

if TYPE_CHECKING:
    from .models import LLMClientRequest

__all__ = ["RequestManager", "RequestManagerDescriptor"]

R = TypeVar("R", bound="LLMClientRequest")


class RequestManager(Manager[R]):
    """``LLMClientRequest.objects``: every :class:`Manager` method, plus ``for_session``."""

    __slots__ = ()

    def _client_model(self) -> type[Any]:
        # The class `llm_client` links to: the model says it, so this layer
        # needs no import of the client document.
        target = field_specs(self.model)["llm_client"].target
        assert target is not None  # `llm_client` is a Link on every request model
        return target

    def for_session(
        self,
        session_key: str,
        *,
        llm_client: ClientRef | None = None,
        include_aggregations: bool = True,
    ) -> QuerySet[R]:
        """A session's requests, oldest first (``created_at``, then ``_id``).

        ``order_by("-created_at")`` reverses it (``_id`` stays the tiebreak, in
        the same direction). Page it with ``page()``, stream it with
        ``iterator()``.

        Example::

            history = LLMClientRequest.objects.for_session("abc123", llm_client=client)
            page = await history.page(size=50)

        Args:
            session_key: the session.
            llm_client: only this client's requests (an ``LLMClient``, a link
                to one, an ``ObjectId`` or a hex id).
            include_aggregations: False drops the rollup records
                ``aggregate_sessions`` writes.

        Raises:
            InvalidInput: a session key that is not a string, or a bad client.
        """
        key = check_session_key(session_key, nullable=False)
        client_id = client_ref(llm_client, model=self._client_model())
        check_bool("include_aggregations", include_aggregations)
        # Plain equality (the values are a checked str and an ObjectId): the
        # shape the embedded engine's planner matches to an index
        # (docs/embedded-engine.md, §14).
        clause: dict[str, Any] = {"session_key": key}
        if client_id is not None:
            clause["llm_client_id"] = client_id
        if not include_aggregations:
            clause.update(RAW_ONLY)
        return QuerySet(
            self.model,
            clauses=(clause,),
            sort=(("created_at", 1), ("_id", 1)),
            tiebreak=True,
        )


class RequestManagerDescriptor(ManagerDescriptor):
    """Makes ``Model.objects`` a :class:`RequestManager` bound to the class it is read from."""

    def __get__(self, instance: object, owner: type[R]) -> RequestManager[R]:
        if instance is not None:
            raise AttributeError(
                f"the manager is reached through the class ({owner.__name__}.objects), "
                "not through an instance"
            )
        return RequestManager(owner)
