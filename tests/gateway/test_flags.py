"""`gamesync gateway` flags come from GatewaySettings: every field a flag, its help and default."""

from __future__ import annotations

import argparse
import functools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gamesync.errors import ConfigError
from gamesync.flags import add_settings_flags, given_settings
from gamesync.settings import AuthzPolicy, GatewaySettings, load_settings

FIELDS = GatewaySettings.model_fields


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No GAMESYNC_* variable of the machine running the tests leaks in."""
    for name in list(os.environ):
        if name.startswith("GAMESYNC_"):
            monkeypatch.delenv(name)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _parse(*argv: str) -> GatewaySettings:
    parser = argparse.ArgumentParser()
    add_settings_flags(parser, GatewaySettings)
    return load_settings(**given_settings(parser.parse_args(argv), GatewaySettings))


@functools.cache
def _help_lines() -> dict[str, str]:
    """The gateway's --help as the gamesync command prints it, one line per flag."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMESYNC_")}
    env.pop("COLUMNS", None)  # as in a pipe: the narrowest terminal argparse assumes (80)
    result = subprocess.run(
        [sys.executable, "-m", "gamesync", "gateway", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env=env,
    )
    lines: dict[str, str] = {}
    for line in result.stdout.splitlines():
        match = re.match(r"  (--[\w-]+)", line)
        if match:
            lines[match.group(1)] = line
    return lines


def test_every_setting_has_a_description() -> None:
    missing = [name for name, field in FIELDS.items() if not field.description]
    assert not missing


def test_help_has_one_line_per_setting_with_its_default() -> None:
    lines = _help_lines()
    assert set(lines) == {_flag(name) for name in FIELDS}
    for name in FIELDS:
        assert "default" in lines[_flag(name)], lines[_flag(name)]


@pytest.mark.parametrize(
    ("flag", "shown"),
    [
        ("--host", "127.0.0.1"),
        ("--port", "8000"),
        ("--internal-port", "9000"),
        ("--broker", "memory://"),
        ("--authz", "members; dev mode: open"),
        ("--ping-interval", "20"),
        ("--ping-timeout", "20"),
        ("--idle-timeout", "60"),
        ("--drain-seconds", "30"),
        ("--demo", "off"),
        ("--allow-hs256", "off"),
        ("--max-frame-bytes", "4096"),
    ],
)
def test_help_states_the_defaults_the_issue_found_missing(flag: str, shown: str) -> None:
    assert f"(default: {shown})" in _help_lines()[flag]


def test_every_default_in_the_help_is_the_value_the_gateway_runs_with() -> None:
    """Help and validation read one model: the shown default is what load_settings() yields."""
    lines = _help_lines()
    settings = load_settings(keys="/etc/gamesync/keys/jwks.json")  # else it refuses to start
    for name in FIELDS:
        if name == "keys":
            continue  # given above; its help says "none: needs --dev"
        shown = re.search(r"\(default: ([^;)]*)", lines[_flag(name)])
        assert shown is not None, name
        value = getattr(settings, name)
        if value is None or value in ("", ()):
            continue  # unset: the description says what that means (checked above)
        if isinstance(value, bool):
            expected = "on" if value else "off"
        elif isinstance(value, float):
            expected = f"{value:g}"
        else:
            expected = str(value)
        assert shown.group(1) == expected, (name, shown.group(1), expected)


def test_flags_reach_the_validated_settings_with_their_types(tmp_path: Path) -> None:
    settings = _parse(
        "--port",
        "8100",
        "--authz",
        "claim",
        "--allowed-origins",
        "https://a.example, https://b.example/",
        "--internal-host",
        "10.0.0.7",
        "--keys",
        str(tmp_path / "jwks.json"),
        "--max-publish-bytes",
        "2048",
        "--drain-seconds",
        "1.5",
        "--allow-hs256",
    )
    assert settings.port == 8100
    assert settings.authz is AuthzPolicy.CLAIM
    assert settings.allowed_origins == ("https://a.example", "https://b.example")
    assert settings.internal_host == "10.0.0.7"
    assert settings.keys == tmp_path / "jwks.json"
    assert settings.max_publish_bytes == 2048
    assert settings.drain_seconds == 1.5
    assert settings.allow_hs256 is True


def test_unset_flags_leave_the_environment_in_force_and_given_ones_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GAMESYNC_PORT", "8200")
    monkeypatch.setenv("GAMESYNC_DEMO", "true")
    assert _parse().port == 8200
    assert _parse().demo is True
    assert _parse("--port", "8300").port == 8300
    assert _parse("--no-demo", "--dev").demo is False


def test_a_bad_flag_value_is_refused_by_the_model_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"^invalid gateway settings: port: .*integer"):
        _parse("--port", "eighty")
    with pytest.raises(ConfigError, match=r"idle_timeout: .*greater than 0"):
        _parse("--idle-timeout", "0")


def test_a_bad_choice_is_refused_by_the_parser_with_the_choices() -> None:
    with pytest.raises(SystemExit):
        _parse("--authz", "everyone")
