"""Gateway settings: typed, validated once at start-up, from flags and GAMESYNC_* environment."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gamesync.broker.schemes import scheme_of
from gamesync.errors import ConfigError

__all__ = ["AuthzPolicy", "GatewaySettings", "load_settings"]


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
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535, description="public port: websockets and probes")
    internal_port: int = Field(9000, ge=0, le=65535, description="metrics, stats, publish")
    pod_name: str = Field("", description="reported in /v1/stats and traces; defaults to hostname")

    # Fan-out engine
    broker: str = Field("memory://", description="memory:// | redis://... | redis+cluster://...")
    latest_ttl_seconds: int = Field(86_400, ge=1, description="TTL of game:{id}:latest in Redis")

    # Keys and authorization
    keys: Path | None = Field(None, description="JWKS file; without it the gateway is in dev mode")
    publish_token: str | None = Field(None, description="bearer token for the publish endpoint")
    audience: str | None = None
    issuer: str | None = None
    leeway_seconds: float = Field(5.0, ge=0, le=300)
    authz: AuthzPolicy | None = Field(None, description="default: members; dev mode: open")
    authz_url: str | None = Field(None, description="backend policy URL; {gameId} is replaced")
    authz_cache_seconds: float = Field(5.0, ge=0, le=300)
    authz_timeout_seconds: float = Field(2.0, gt=0, le=30)
    allowed_origins: Annotated[tuple[str, ...], NoDecode] = ()
    key_reload_seconds: float = Field(1.0, gt=0, le=60)

    # Runtime config (operator -> running gateways)
    runtime_config: Path | None = None

    # Logs: JSON lines in production, text in dev mode unless set
    log_format: Literal["json", "text"] | None = None

    # Demo feed (dev)
    demo: bool = False

    # Connection lifecycle (seconds)
    ping_interval: float = Field(20.0, gt=0)
    ping_timeout: float = Field(20.0, gt=0)
    idle_timeout: float = Field(60.0, gt=0)
    auth_timeout: float = Field(5.0, gt=0)
    drain_seconds: float = Field(30.0, ge=0)
    slow_client_seconds: float = Field(10.0, gt=0, description="unwritable this long: close 1013")

    # Limits
    max_frame_bytes: int = Field(4096, ge=256, le=1 << 20)
    max_subscriptions: int = Field(64, ge=1)
    max_connections_per_user: int = Field(16, ge=1)
    max_connections: int = Field(50_000, ge=1, description="per pod; beyond it: close 1013")
    message_rate: float = Field(20.0, gt=0, description="client messages per second (sustained)")
    message_burst: int = Field(40, ge=1)
    bad_message_limit: int = Field(
        20, ge=1, description="more bad messages than this in the window: 1008"
    )
    bad_message_window: float = Field(10.0, gt=0)
    max_publish_bytes: int = Field(1 << 20, ge=1024)
    unsubscribe_linger_seconds: float = Field(2.0, ge=0)

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

    @model_validator(mode="after")
    def _check_backend_url(self) -> GatewaySettings:
        if self.authz is AuthzPolicy.BACKEND and not self.authz_url:
            raise ValueError("--authz backend needs --authz-url")
        return self

    @property
    def dev_mode(self) -> bool:
        """No key file: generated keys, console page, open policy by default."""
        return self.keys is None

    @property
    def effective_authz(self) -> AuthzPolicy:
        """The policy in force: the configured one, else `open` in dev mode, else `members`."""
        if self.authz is not None:
            return self.authz
        return AuthzPolicy.OPEN if self.dev_mode else AuthzPolicy.MEMBERS


def load_settings(**overrides: Any) -> GatewaySettings:
    """Build settings from flags (`overrides`, None meaning unset) and the environment."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return GatewaySettings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid gateway settings: {problems}") from exc
