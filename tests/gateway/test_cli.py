"""The `gamesync` command line: each subcommand reports its own mistakes and explains its flags."""

from __future__ import annotations

import argparse

import pytest

from gamesync.cli import _parser, main


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["gateway", "--brokr", "x"], "usage: gamesync gateway "),
        (["token", "--signer", "s.json", "--sub", "7", "--tll", "60"], "usage: gamesync token "),
        (["keys", "generate", "--dir", "k", "--algo", "ES256"], "usage: gamesync keys generate "),
        (["publish", "1", "e.json", "--url", "u", "--tokn", "t"], "usage: gamesync publish "),
    ],
)
def test_an_unknown_flag_gets_the_usage_of_the_subcommand_it_was_given_to(
    argv: list[str], usage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage), err
    assert f"unrecognized arguments: {' '.join(argv[-2:])}" in err


def test_an_unknown_top_level_flag_still_gets_the_top_level_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--verbose", "token", "--signer", "s.json", "--sub", "7"])
    assert capsys.readouterr().err.startswith("usage: gamesync [-h]")


def _actions(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    """Every option of every (sub)command, with the command's name."""
    found: list[tuple[str, argparse.Action]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found.extend(_actions(child))
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            found.append((parser.prog, action))
    return found


def test_every_flag_of_every_subcommand_has_help_text() -> None:
    missing = [
        f"{prog} {action.dest}"
        for prog, action in _actions(_parser())
        if not action.help and action.dest != "log_level"
    ]
    assert not missing


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["token", "--help"], ["--ttl TTL", "seconds until it expires (default: 3600)"]),
        (["keys", "generate", "--help"], ["--dir DIR", "(default: ES256)"]),
    ],
)
def test_keys_generate_and_token_explain_their_flags(
    argv: list[str], expected: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for text in expected:
        assert text in out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([], "no --keys: pass --keys PATH"),
        (["--host", "0.0.0.0", "--dev"], "not --host 0.0.0.0"),
        (["--demo", "--broker", "redis://127.0.0.1:6379"], "in-process broker only"),
        (["--demo", "--keys", "jwks.json"], "cannot run next to --keys"),
    ],
)
def test_the_gateway_refuses_to_start_open_unless_asked_in_one_line(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12.3: `gamesync gateway` with no keys served open access on any host and broker."""
    monkeypatch.delenv("GAMESYNC_KEYS", raising=False)
    monkeypatch.delenv("GAMESYNC_DEV", raising=False)
    monkeypatch.delenv("GAMESYNC_DEMO", raising=False)
    assert main(["gateway", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("gamesync gateway: invalid gateway settings: "), err
    assert says in err
