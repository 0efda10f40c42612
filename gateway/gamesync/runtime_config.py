"""Runtime configuration (DESIGN §7): one JSON file, re-read live, last good version kept."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["RuntimeConfig", "RuntimeConfigStore", "TracingConfig"]

log = logging.getLogger("gamesync.runtime")


class Sampler(StrEnum):
    ALWAYS_ON = "always_on"
    ALWAYS_OFF = "always_off"
    TRACEIDRATIO = "traceidratio"
    PARENTBASED_ALWAYS_ON = "parentbased_always_on"
    PARENTBASED_ALWAYS_OFF = "parentbased_always_off"
    PARENTBASED_TRACEIDRATIO = "parentbased_traceidratio"


class TracingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    enabled: bool = False
    endpoint: str = "http://localhost:4318"
    protocol: Literal["http/protobuf", "grpc"] = "http/protobuf"
    sampler: Sampler = Sampler.PARENTBASED_TRACEIDRATIO
    ratio: float = Field(0.05, ge=0.0, le=1.0)
    resource_attributes: dict[str, str] = Field(default_factory=dict, alias="resourceAttributes")


class RuntimeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    tracing: TracingConfig = TracingConfig()
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", alias="logLevel")


Listener = Callable[[RuntimeConfig], None]


class RuntimeConfigStore:
    """The applied runtime config, its hash, and whether the newest file was refused."""

    def __init__(self) -> None:
        self.config = RuntimeConfig.model_validate({})
        self.hash: str | None = None
        self.error: str | None = None
        self.reloads = 0
        self.failures = 0
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        """Call `listener` with every config applied from now on (and the current one now)."""
        self._listeners.append(listener)
        listener(self.config)

    def load(self, content: bytes) -> None:
        """Validate and apply; on any error keep the last good config and say why."""
        try:
            config = RuntimeConfig.model_validate(json.loads(content))
        except (ValueError, ValidationError) as exc:
            self.failures += 1
            reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            self.error = f"invalid runtime config: {reason}"
            log.error("%s; keeping the config applied before (hash %s)", self.error, self.hash)
            return
        for listener in self._listeners:
            try:
                listener(config)
            except Exception as exc:
                self.failures += 1
                self.error = f"runtime config could not be applied: {exc}"
                log.exception("applying the runtime config failed; keeping the previous one")
                for undo in self._listeners:
                    undo(self.config)
                return
        self.config = config
        self.hash = "sha256:" + hashlib.sha256(content).hexdigest()
        self.error = None
        self.reloads += 1
        log.info("runtime config applied (hash %s)", self.hash)
