"""gamesync.settings: flags and GAMESYNC_* environment, validated once with clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from gamesync.errors import ConfigError
from gamesync.settings import AuthzPolicy, load_settings

KEYS = "/etc/gamesync/keys/jwks.json"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No GAMESYNC_* variable of the machine running the tests leaks in; keys are configured.

    (A gateway without keys refuses to start unless asked for dev mode: the dev-mode tests
    below unset GAMESYNC_KEYS.)
    """
    for name in list(os.environ):
        if name.startswith("GAMESYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GAMESYNC_KEYS", KEYS)


def config_error(**flags: object) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(**flags)
    message = str(caught.value)
    assert message.startswith("invalid gateway settings: ")
    return message


def test_defaults_are_those_of_the_design() -> None:
    settings = load_settings()
    assert (settings.host, settings.port, settings.internal_port) == ("127.0.0.1", 8000, 9000)
    assert settings.broker == "memory://"
    assert (settings.ping_interval, settings.ping_timeout, settings.idle_timeout) == (20, 20, 60)
    assert settings.drain_seconds == 30
    assert settings.max_frame_bytes == 4096
    assert settings.leeway_seconds == 5
    assert settings.allowed_origins == ()
    assert settings.effective_internal_host == settings.host
    assert settings.max_token_lifetime == 24 * 3600
    assert settings.max_pending_connections == 1000
    assert settings.client_address_header is None
    assert settings.effective_max_pending_per_address == 0  # behind a proxy: see below
    assert settings.close_timeout == 5
    assert not settings.dev_mode


@pytest.fixture
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GAMESYNC_KEYS")


@pytest.mark.usefixtures("no_keys")
def test_without_keys_the_gateway_refuses_to_start_saying_what_to_pass() -> None:
    """Issue 12.3: no keys meant dev mode, open to anyone, on whatever host it was given."""
    message = config_error()
    assert "\n" not in message
    assert "no --keys: pass --keys PATH" in message
    assert "or --dev" in message


@pytest.mark.usefixtures("no_keys")
@pytest.mark.parametrize("flag", ["dev", "demo"])
def test_dev_mode_only_when_asked_for_with_the_open_policy(flag: str) -> None:
    settings = load_settings(**{flag: True})
    assert settings.dev_mode
    assert settings.effective_authz is AuthzPolicy.OPEN


@pytest.mark.usefixtures("no_keys")
@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_dev_mode_listens_on_loopback(host: str) -> None:
    assert load_settings(dev=True, host=host, internal_host=host).dev_mode


@pytest.mark.usefixtures("no_keys")
@pytest.mark.parametrize(
    ("flags", "named"),
    [
        ({"host": "0.0.0.0"}, "loopback only, not --host 0.0.0.0"),
        ({"host": "10.1.2.3"}, "not --host 10.1.2.3"),
        ({"host": "gateway.example"}, "not --host gateway.example"),
        ({"internal_host": "0.0.0.0"}, "not --internal-host 0.0.0.0"),
        ({"broker": "redis://redis:6379"}, "in-process broker only"),
    ],
)
def test_dev_mode_is_refused_off_loopback_or_with_a_shared_broker(
    flags: dict[str, object], named: str
) -> None:
    assert named in config_error(dev=True, **flags)
    assert named in config_error(demo=True, **flags)


@pytest.mark.parametrize(
    ("flag", "named"), [("demo", "--demo publishes to game 1"), ("dev", "--dev generates")]
)
def test_demo_and_dev_are_refused_next_to_keys(flag: str, named: str) -> None:
    assert "cannot run next to --keys" in config_error(**{flag: True})
    assert named in config_error(**{flag: True})


def test_with_keys_the_default_policy_is_members(tmp_path: Path) -> None:
    settings = load_settings(keys=tmp_path / "jwks.json")
    assert not settings.dev_mode
    assert settings.effective_authz is AuthzPolicy.MEMBERS
    assert load_settings(keys=tmp_path, authz="claim").effective_authz is AuthzPolicy.CLAIM


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAMESYNC_BROKER", "redis://redis:6379/0")
    monkeypatch.setenv("GAMESYNC_PORT", "8100")
    monkeypatch.setenv("GAMESYNC_INTERNAL_PORT", "9100")
    monkeypatch.setenv("GAMESYNC_KEYS", "/etc/gamesync/keys/jwks.json")
    monkeypatch.setenv("GAMESYNC_PUBLISH_TOKEN", "secret")
    monkeypatch.setenv("GAMESYNC_AUTHZ", "claim")
    monkeypatch.setenv("GAMESYNC_PING_INTERVAL", "5.5")
    monkeypatch.setenv("GAMESYNC_DRAIN_SECONDS", "12")
    monkeypatch.setenv("GAMESYNC_POD_NAME", "gw-abc")
    monkeypatch.setenv("GAMESYNC_INTERNAL_HOST", "10.0.0.7")
    monkeypatch.setenv("GAMESYNC_MAX_TOKEN_LIFETIME", "3600")
    settings = load_settings()
    assert settings.broker == "redis://redis:6379/0"
    assert (settings.port, settings.internal_port) == (8100, 9100)
    assert settings.keys == Path("/etc/gamesync/keys/jwks.json")
    assert settings.publish_token == "secret"
    assert settings.authz is AuthzPolicy.CLAIM
    assert settings.ping_interval == 5.5
    assert settings.drain_seconds == 12
    assert settings.pod_name == "gw-abc"
    assert settings.effective_internal_host == "10.0.0.7"
    assert settings.max_token_lifetime == 3600


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAMESYNC_PORT", "8100")
    monkeypatch.setenv("GAMESYNC_BROKER", "redis://env:6379")
    settings = load_settings(port=8200, broker=None)  # None: the flag was not given
    assert settings.port == 8200
    assert settings.broker == "redis://env:6379"


def test_unknown_gamesync_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAMESYNC_SOMETHING_ELSE", "1")
    assert load_settings().port == 8000


def test_unknown_flag_is_refused() -> None:
    assert "nonsense" in config_error(nonsense=1)


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("GAMESYNC_PORT", "eighty", "port: Input should be a valid integer"),
        ("GAMESYNC_PING_TIMEOUT", "0", "ping_timeout: Input should be greater than 0"),
        ("GAMESYNC_AUTHZ", "everyone", "authz: Input should be 'open', 'claim'"),
        ("GAMESYNC_DEMO", "maybe", "demo: Input should be a valid boolean"),
    ],
)
def test_bad_environment_value_is_a_config_error_naming_the_setting(
    variable: str, value: str, named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    assert named in config_error()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        ({"port": 70000}, "port: Input should be less than or equal to 65535"),
        ({"internal_port": -1}, "internal_port: Input should be greater than or equal to 0"),
        ({"drain_seconds": -1}, "drain_seconds"),
        ({"max_frame_bytes": 100}, "max_frame_bytes"),
        ({"broker": "http://redis:6379"}, "broker: broker URL must start with"),
        ({"broker": "redis"}, "broker URL must start with one of memory://"),
    ],
)
def test_bad_flag_value_is_a_config_error_naming_the_setting(
    flags: dict[str, object], named: str
) -> None:
    assert named in config_error(**flags)


def test_every_problem_is_reported_at_once() -> None:
    message = config_error(port=70000, broker="http://x")
    assert "port:" in message
    assert "broker:" in message


@pytest.mark.parametrize(
    "broker",
    [
        "memory://",
        "redis://h:6379/0",
        "rediss://h:6380",
        "redis+cluster://a:1,b:2",
        "rediss+cluster://a:1",
    ],
)
def test_every_broker_scheme_of_the_design_is_accepted(broker: str) -> None:
    assert load_settings(broker=broker).broker == broker


def test_allowed_origins_are_split_trimmed_and_unslashed(monkeypatch: pytest.MonkeyPatch) -> None:
    flag = load_settings(allowed_origins=" https://a.example, https://b.example/ ,,")
    assert flag.allowed_origins == ("https://a.example", "https://b.example")
    monkeypatch.setenv("GAMESYNC_ALLOWED_ORIGINS", "https://c.example/,http://localhost:3000")
    assert load_settings().allowed_origins == ("https://c.example", "http://localhost:3000")
    assert load_settings(allowed_origins=("https://d.example",)).allowed_origins == (
        "https://d.example",
    )


def test_backend_policy_needs_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "--authz backend needs --authz-url" in config_error(authz="backend")
    monkeypatch.setenv("GAMESYNC_AUTHZ", "backend")
    assert "--authz backend needs --authz-url" in config_error()
    settings = load_settings(authz_url="http://api/games/{gameId}/snapshot")
    assert settings.effective_authz is AuthzPolicy.BACKEND


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]
    assert settings.port == 8000


def test_the_per_address_cap_is_on_by_default_only_when_addresses_name_clients() -> None:
    """Behind an ingress every peer address is the proxy's: a cap on it would be per proxy."""
    assert load_settings().effective_max_pending_per_address == 0
    forwarded = load_settings(client_address_header=" X-Forwarded-For ")
    assert forwarded.client_address_header == "x-forwarded-for"
    assert forwarded.effective_max_pending_per_address == 64
    assert load_settings(max_pending_per_address=8).effective_max_pending_per_address == 8
    off = load_settings(client_address_header="x-real-ip", max_pending_per_address=0)
    assert off.effective_max_pending_per_address == 0


def test_the_abuse_penalty_is_on_by_default_only_when_addresses_name_clients() -> None:
    """The same rule as the per-address cap: a penalty on a proxy's address refuses everyone."""
    assert load_settings().effective_abuse_burst == 0
    assert load_settings(client_address_header="x-forwarded-for").effective_abuse_burst == 10
    assert load_settings(abuse_burst=4).effective_abuse_burst == 4  # exposed directly
    off = load_settings(client_address_header="x-real-ip", abuse_burst=0)
    assert off.effective_abuse_burst == 0
