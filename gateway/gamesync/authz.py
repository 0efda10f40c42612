"""Subscription authorization policies (DESIGN §4): open, claim, members, backend."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from enum import Enum

import httpx

from gamesync.envelope import Envelope
from gamesync.keys import Identity
from gamesync.settings import AuthzPolicy

__all__ = ["Access", "Authorizer"]

log = logging.getLogger("gamesync.authz")

LatestReader = Callable[[int], Awaitable[Envelope | None]]


class Access(Enum):
    """An authorization answer for one (user, game)."""

    ALLOW = "allow"
    DENY = "deny"
    UNAVAILABLE = "unavailable"  # could not decide now: never treated as allowed


class Authorizer:
    """Decides whether a user may watch a game under the configured policy."""

    def __init__(
        self,
        policy: AuthzPolicy,
        *,
        latest: LatestReader,
        url: str | None = None,
        cache_seconds: float = 5.0,
        timeout_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self._latest = latest
        self._url = url
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[tuple[str, int], tuple[float, Access]] = {}
        #: members policy: game -> user -> until when a DENY stands (probing ids costs no read)
        self._denied: dict[int, dict[str, float]] = {}
        self._denied_count = 0
        self._client: httpx.AsyncClient | None = None
        if policy is AuthzPolicy.BACKEND:
            self._client = httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=False)

    async def decide(self, identity: Identity, token: str, game_id: int) -> Access:
        """ALLOW, DENY, or UNAVAILABLE when the policy's source cannot answer."""
        if self.policy is AuthzPolicy.OPEN:
            return Access.ALLOW
        if self.policy is AuthzPolicy.CLAIM:
            allowed = identity.games is not None and game_id in identity.games
            return Access.ALLOW if allowed else Access.DENY
        if self.policy is AuthzPolicy.MEMBERS:
            return await self._members(identity, game_id)
        return await self._backend(identity, token, game_id)

    async def _members(self, identity: Identity, game_id: int) -> Access:
        user = identity.user_id
        now = self._clock()
        denied = self._denied.get(game_id)
        if denied is not None and denied.get(user, 0.0) > now:
            return Access.DENY
        try:
            envelope = await self._latest(game_id)
        except Exception:
            log.warning("members check for game %s could not read the latest envelope", game_id)
            return Access.UNAVAILABLE
        if envelope is not None and envelope.members is not None and user in envelope.members:
            return Access.ALLOW
        if self._cache_seconds > 0:
            if self._denied_count >= 100_000:
                self._denied.clear()
                self._denied_count = 0
            users = self._denied.setdefault(game_id, {})
            self._denied_count += user not in users
            users[user] = now + self._cache_seconds
        return Access.DENY

    def members_changed(self, game_id: int) -> None:
        """The game's `members` changed: its cached refusals no longer hold."""
        dropped = self._denied.pop(game_id, None)
        if dropped is not None:
            self._denied_count -= len(dropped)

    async def _backend(self, identity: Identity, token: str, game_id: int) -> Access:
        key = (identity.user_id, game_id)
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        assert self._client is not None  # set in __init__ for this policy
        assert self._url is not None
        url = self._url.replace("{gameId}", str(game_id))
        try:
            response = await self._client.get(url, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            log.warning("backend authorization unreachable: %s", type(exc).__name__)
            return Access.UNAVAILABLE
        if response.is_success:
            decision = Access.ALLOW
        elif response.status_code in (401, 403, 404):
            decision = Access.DENY
        else:
            log.warning("backend authorization answered %s", response.status_code)
            return Access.UNAVAILABLE
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[key] = (now + self._cache_seconds, decision)
        return decision

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
