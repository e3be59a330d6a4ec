"""``llmreq shard``: shard ``llm_client_requests`` on the library's key, on a cluster.

Against a ``mongos`` it runs ``shardCollection`` (once: a second run says the
collection is already sharded). Against anything else it changes nothing and
says why, with exit status 0: a replica set simply has nothing to shard.
"""

from __future__ import annotations

import typer

from llmreq_mongo._connection import Handle
from llmreq_mongo._sharding import ShardResult, shard_requests

from ._app import JsonFlag, app, run, settings_of
from ._render import print_json

__all__ = ["shard"]


@app.command()
def shard(ctx: typer.Context, json: JsonFlag = False) -> None:
    """Shard llm_client_requests on {llm_client_id, session_key, _id} (mongos only)."""
    settings = settings_of(ctx)

    async def work(handle: Handle) -> ShardResult:
        return await shard_requests(handle.database)

    result = run(settings, work)
    if settings.wants_json(json):
        print_json(
            {
                "outcome": result.outcome,
                "namespace": result.namespace,
                "key": result.key,
                "reason": result.reason,
            }
        )
        return
    settings.console.print(result.reason, markup=False)
