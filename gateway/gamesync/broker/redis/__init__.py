"""The Redis brokers (DESIGN §3, §6): standalone pub/sub or Redis Cluster's sharded pub/sub.

- `script`: the key and channel names and the publish script every publisher shares (pure);
- `options`: GameSync's own tuning in a `--broker` URL (pure);
- `commands`: the command client and the script runner (all `gamesync.publisher` needs);
- `link`: one node's pub/sub connection as a state machine;
- `pubsub`: the pub/sub broker (links, probes, resync, re-routing) and its standalone form;
- `cluster`: the Cluster form, which follows the slot map.

Only `commands`, `link`, `pubsub` and `cluster` import `redis` (import-linter checks it).
`gamesync.broker.schemes` picks the broker for a URL.
"""

from __future__ import annotations

from gamesync.broker.redis.script import PUBLISH_SCRIPT, PUBLISH_SCRIPT_SHA1

__all__ = ["PUBLISH_SCRIPT", "PUBLISH_SCRIPT_SHA1"]
