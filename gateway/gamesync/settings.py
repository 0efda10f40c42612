"""Gateway settings: typed, validated once at start-up, from flags and GAMESYNC_* environment."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gamesync.abuse import ABUSE_BURST, ABUSE_RATE
from gamesync.broker.schemes import scheme_of
from gamesync.errors import ConfigError
from gamesync.shards import ShardIdentity

__all__ = [
    "ADMISSION_BURST",
    "ADMISSION_RATE",
    "TOKEN_CACHE_SIZE",
    "AuthzPolicy",
    "GatewaySettings",
    "load_settings",
]

#: Unauthenticated connections one client address may hold, once addresses are known.
DEFAULT_PENDING_PER_ADDRESS = 64

#: Admission pacing defaults: new connections a pod admits a second, and at once (DESIGN §2).
ADMISSION_RATE = 500.0
ADMISSION_BURST = 500

#: Verified tokens a pod remembers by default: one per connection at the default
#: `--max-connections`, so a whole pod's clients can come back on cached tokens.
TOKEN_CACHE_SIZE = 50_000


class AuthzPolicy(StrEnum):
    """Who may subscribe to which game (DESIGN §4)."""

    OPEN = "open"
    CLAIM = "claim"
    MEMBERS = "members"
    BACKEND = "backend"


class GatewaySettings(BaseSettings):
    """Everything `gamesync gateway` is configured with. Flags win over the environment."""

    model_config = SettingsConfigDict(env_prefix="GAMESYNC_", extra="forbid", frozen=True)

    # Listeners
    host: str = Field("127.0.0.1", description="address the public port listens on")
    port: int = Field(8000, ge=0, le=65535, description="public port: websockets and probes")
    internal_host: str | None = Field(
        None, description="address the internal port listens on (default: same as --host)"
    )
    internal_port: int = Field(
        9000, ge=0, le=65535, description="internal port: metrics, stats, publish"
    )
    pod_name: str = Field("", description="name in /v1/stats and traces (default: host name)")

    # Game-affine placement (DESIGN §2): this pod is shard `shard` of `shards`
    shard: int = Field(0, ge=0, description="this gateway's shard index, 0 ≤ shard < shards")
    shards: int = Field(
        1, ge=1, le=256, description="gateway shards in the fleet (1: no game-affine placement)"
    )

    # Fan-out engine
    broker: str = Field("memory://", description="memory:// | redis://... | redis+cluster://...")
    latest_ttl_seconds: int = Field(86_400, ge=1, description="TTL of game:{id}:latest in Redis")

    # Keys and authorization
    keys: Path | None = Field(
        None, description="JWKS file of public keys (default: none: needs --dev)"
    )
    dev: bool = Field(False, description="dev mode: generated keys, open access; loopback only")
    allow_hs256: bool = Field(False, description="let --keys hold HS256 shared secrets (oct keys)")
    publish_token: str | None = Field(
        None, description="bearer token for HTTP publish (default: none: off)"
    )
    audience: str | None = Field(None, description="required aud claim (default: not checked)")
    issuer: str | None = Field(None, description="required iss claim (default: not checked)")
    leeway_seconds: float = Field(5.0, ge=0, le=300, description="clock skew allowed on exp")
    max_token_lifetime: float = Field(
        86_400.0, gt=0, description="seconds a token may live (exp - iat; iat required)"
    )
    token_cache_size: int = Field(
        TOKEN_CACHE_SIZE, ge=0, description="verified tokens remembered until exp (0: off)"
    )
    authz: AuthzPolicy | None = Field(
        None, description="who may watch a game (default: members; dev mode: open)"
    )
    authz_url: str | None = Field(
        None, description="backend policy URL, {gameId} replaced (default: none)"
    )
    authz_cache_seconds: float = Field(
        5.0, ge=0, le=300, description="how long a backend answer is reused"
    )
    authz_timeout_seconds: float = Field(
        2.0, gt=0, le=30, description="backend policy request timeout"
    )
    allowed_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="browser origins allowed, comma-separated (default: any)"
    )
    key_reload_seconds: float = Field(
        1.0, gt=0, le=60, description="how often --keys and --runtime-config are re-read"
    )

    # Runtime config (operator -> running gateways)
    runtime_config: Path | None = Field(
        None, description="JSON applied live: tracing, log level (default: none)"
    )

    # Logs: JSON lines in production, text in dev mode unless set
    log_format: Literal["json", "text"] | None = Field(
        None, description="log lines (default: json; text in dev mode)"
    )

    # Demo feed (dev)
    demo: bool = Field(False, description="publish a simulated game once a second (implies --dev)")

    # Connection lifecycle (seconds)
    ping_interval: float = Field(20.0, gt=0, description="seconds between websocket pings")
    ping_timeout: float = Field(20.0, gt=0, description="no pong this long: close 4408")
    idle_timeout: float = Field(60.0, gt=0, description="no subscription this long: close 4408")
    auth_timeout: float = Field(5.0, gt=0, description="first-message auth must come this soon")
    drain_seconds: float = Field(30.0, ge=0, description="on SIGTERM, close sockets over this")
    evacuation_rate: float = Field(
        0.0, ge=0, description="connections/s a drain or shed moves (0: over the window)"
    )
    slow_client_seconds: float = Field(10.0, gt=0, description="unwritable this long: close 1013")
    close_timeout: float = Field(
        5.0, gt=0, le=60, description="a closing socket not finished this soon is dropped"
    )
    handshake_timeout: float = Field(
        10.0, gt=0, le=300, description="a request head not complete this soon: 408 and close"
    )

    # Limits
    max_frame_bytes: int = Field(
        4096, ge=256, le=1 << 20, description="largest client frame; larger: close 1009"
    )
    max_subscriptions: int = Field(64, ge=1, description="games per connection")
    max_connections_per_user: int = Field(16, ge=1, description="beyond it: close 4429")
    max_connections: int = Field(
        50_000, ge=1, description="per pod, closing ones too; beyond it: close 1013"
    )
    max_pending_connections: int = Field(
        1000, ge=1, description="not yet authenticated, per pod; beyond it: 1013"
    )
    max_pending_per_address: int | None = Field(
        None,
        ge=0,
        description="unauthenticated per client (default: 64 if --client-address-header)",
    )
    client_address_header: str | None = Field(
        None,
        description="proxy header naming the client, e.g. x-forwarded-for (default: none)",
    )
    abuse_burst: int | None = Field(
        None,
        ge=0,
        description="abusive closes per client, then 429 (default: 10 if --client-address-header)",
    )
    abuse_rate: float = Field(
        ABUSE_RATE, gt=0, le=100, description="abusive closes forgiven per second"
    )
    admission_rate: float = Field(
        ADMISSION_RATE, gt=0, description="new connections admitted per second, paced"
    )
    admission_burst: int = Field(
        ADMISSION_BURST, ge=1, description="new connections admitted at once before pacing"
    )
    message_rate: float = Field(20.0, gt=0, description="sustained client messages per second")
    message_burst: int = Field(40, ge=1, description="client messages allowed in a burst")
    bad_message_limit: int = Field(
        20, ge=1, description="more bad messages than this in the window: 1008"
    )
    bad_message_window: float = Field(10.0, gt=0, description="seconds the bad messages count in")
    max_publish_bytes: int = Field(1 << 20, ge=1024, description="largest HTTP publish body")
    unsubscribe_linger_seconds: float = Field(
        2.0, ge=0, description="keep a game subscribed after its last watcher leaves"
    )

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
        return value

    @field_validator("broker")
    @classmethod
    def _check_broker(cls, value: str) -> str:
        try:
            scheme_of(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("client_address_header")
    @classmethod
    def _lower_header(cls, value: str | None) -> str | None:
        return value.strip().lower() or None if value is not None else None

    @model_validator(mode="after")
    def _check_shard(self) -> GatewaySettings:
        if self.shard >= self.shards:
            raise ValueError(
                f"--shard {self.shard} is not below --shards {self.shards} (0 ≤ shard < shards)"
            )
        return self

    @model_validator(mode="after")
    def _check_backend_url(self) -> GatewaySettings:
        if self.authz is AuthzPolicy.BACKEND and not self.authz_url:
            raise ValueError("--authz backend needs --authz-url")
        return self

    @model_validator(mode="after")
    def _check_mode(self) -> GatewaySettings:
        """Dev mode fails closed: only when asked for, only on loopback, only in-process."""
        if self.keys is not None:
            if self.demo:
                raise ValueError(
                    "--demo publishes to game 1 with made-up versions and needs dev mode; "
                    "it cannot run next to --keys"
                )
            if self.dev:
                raise ValueError("--dev generates its own keys; it cannot run next to --keys")
            return self
        if not self.dev_mode:
            raise ValueError(
                "no --keys: pass --keys PATH to the JWKS file of public keys (in a container, "
                "mount it, e.g. at /etc/gamesync/keys/jwks.json), or --dev for a local gateway "
                "with generated keys and open access"
            )
        for flag, host in (("--host", self.host), ("--internal-host", self.internal_host)):
            if host is not None and not _is_loopback(host):
                raise ValueError(
                    f"dev mode hands out tokens to anyone who asks: it listens on loopback "
                    f"only, not {flag} {host}; pass --keys to serve other hosts"
                )
        if not self.broker.startswith("memory://"):
            raise ValueError(
                "dev mode runs with the in-process broker only (--broker memory://); "
                "pass --keys to use a shared broker"
            )
        return self

    @property
    def dev_mode(self) -> bool:
        """Asked for (`--dev`, or `--demo`): generated keys, console page, open policy."""
        return self.dev or self.demo

    @property
    def effective_max_pending_per_address(self) -> int:
        """The per-address cap in force (0: off).

        Without a trusted proxy header every client seems to come from the proxy in front of
        the pod (an ingress, a gateway): a cap per address would then be a cap per proxy, which
        one client that never authenticates could fill for everyone behind it. So it is on by
        default only when the header names the client.
        """
        if self.max_pending_per_address is not None:
            return self.max_pending_per_address
        return DEFAULT_PENDING_PER_ADDRESS if self.client_address_header else 0

    @property
    def effective_abuse_burst(self) -> int:
        """The abuse penalty's burst in force (0: off; `gamesync.abuse`).

        Off by default without a client-address header for the reason the per-address cap is
        (`effective_max_pending_per_address`): behind a proxy the peer is the proxy, and a
        penalty on it would refuse everyone behind it. A pod exposed directly (a load balancer
        that keeps the client's address) turns it on with `--abuse-burst`.
        """
        if self.abuse_burst is not None:
            return self.abuse_burst
        return ABUSE_BURST if self.client_address_header else 0

    @property
    def shard_identity(self) -> ShardIdentity:
        """This pod's shard, for the endpoints and `GET /v1/shards`."""
        return ShardIdentity(self.shard, self.shards)

    @property
    def effective_internal_host(self) -> str:
        """The address the internal port listens on."""
        return self.host if self.internal_host is None else self.internal_host

    @property
    def effective_authz(self) -> AuthzPolicy:
        """The policy in force: the configured one, else `open` in dev mode, else `members`."""
        if self.authz is not None:
            return self.authz
        return AuthzPolicy.OPEN if self.dev_mode else AuthzPolicy.MEMBERS


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_settings(**overrides: Any) -> GatewaySettings:
    """Build settings from flags (`overrides`, None meaning unset) and the environment."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return GatewaySettings(**given)
    except ValidationError as exc:
        problems = "; ".join(_problem(err["loc"], err["msg"]) for err in exc.errors())
        raise ConfigError(f"invalid gateway settings: {problems}") from exc


def _problem(location: tuple[int | str, ...], message: str) -> str:
    """One problem, named by its setting; a check across settings speaks for itself."""
    message = message.removeprefix("Value error, ")
    if not location:
        return message
    return f"{'.'.join(str(p) for p in location)}: {message}"
