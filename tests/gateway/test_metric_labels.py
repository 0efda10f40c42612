"""Close-code buckets, and the known label values kept in step with the code that emits them."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import gamesync
from gamesync.metric_labels import (
    AUTH_ERRORS,
    AUTH_FAILURE_REASONS,
    CLIENT,
    CLIENT_CLOSE_CODES,
    HANDSHAKE_REFUSALS,
    SERVER_CLOSES,
    close_code_label,
)
from gamesync.protocol import Close

PACKAGE = Path(gamesync.__file__).parent


@pytest.mark.parametrize(
    ("code", "label"),
    [
        (4000, "client_4xxx"),
        (4321, "client_4xxx"),
        (4999, "client_4xxx"),
        (4401, "client_4xxx"),  # one of our codes, but chosen by the client
        (3000, "client_3xxx"),
        (3999, "client_3xxx"),
        (1000, "1000"),
        (1001, "1001"),
        (1005, "1005"),
        (1006, "1006"),
        (1004, "client_other"),
        (2000, "client_other"),
        (5000, "client_other"),
    ],
)
def test_a_clients_close_code_is_bucketed(code: int, label: str) -> None:
    assert close_code_label(code, CLIENT) == label
    assert label in CLIENT_CLOSE_CODES


@pytest.mark.parametrize("code", list(Close))
def test_the_servers_own_close_codes_are_kept(code: Close) -> None:
    assert close_code_label(int(code), "some server reason") == str(int(code))


def test_client_labels_are_few() -> None:
    """At most a few dozen series per reason, whatever codes clients pick."""
    labels = {close_code_label(code, CLIENT) for code in range(0, 6000)}
    assert labels == set(CLIENT_CLOSE_CODES)
    assert len(labels) < 20


# The lists in gamesync.metric_labels against the literals in the gateway's source ------------


def _calls() -> Iterator[ast.Call]:
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                yield node


def _callee(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _arg(call: ast.Call, index: int, keyword: str) -> ast.expr | None:
    if len(call.args) > index:
        return call.args[index]
    return next((k.value for k in call.keywords if k.arg == keyword), None)


def _literal(node: ast.expr | None) -> str | re.Pattern[str] | None:
    """A string constant as it is, an f-string as a pattern, anything else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = [re.escape(v.value) if isinstance(v, ast.Constant) else ".+" for v in node.values]
        return re.compile("".join(parts))
    return None


def _close_code(node: ast.expr | None) -> Close | None:
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "Close"
    ):
        return Close[node.attr]
    return None


def _covered(found: str | re.Pattern[str], known: set[str]) -> bool:
    if isinstance(found, str):
        return found in known
    return any(found.fullmatch(k) for k in known)


def _emitted() -> dict[str, list[str | re.Pattern[str]]]:
    """Reasons in the source: auth errors, auth-failure labels, refusals, server closes."""
    out: dict[str, list[str | re.Pattern[str]]] = {
        "auth_error": [],
        "auth_failed": [],
        "refused": [],
        "close": [],
    }
    for call in _calls():
        name = _callee(call)
        if name == "AuthError":
            text = _literal(_arg(call, 1, "message"))
            assert text is not None, ast.unparse(call)
            out["auth_error"].append(text)
        elif name in ("auth_failed", "handshake_refused"):
            text = _literal(_arg(call, 0, "reason"))
            if text is not None:  # auth_failed(exc.message): an AuthError message
                out["auth_failed" if name == "auth_failed" else "refused"].append(text)
        elif name in ("close", "Refusal", "Verdict"):
            # session.close(Close.X, "reason", ...), the registry's Refusal(Close.X, "reason")
            # and heartbeat's Verdict(action, Close.X, ...)
            offset = 1 if name == "Verdict" else 0
            code = _close_code(_arg(call, offset, "code"))
            text = _literal(_arg(call, offset + 1, "reason"))
            if code is not None and text is not None:
                out["close"].append(f"{int(code)} {text}" if isinstance(text, str) else text)
    return out


EMITTED = _emitted()


def test_every_auth_error_message_is_a_known_reason() -> None:
    assert len(EMITTED["auth_error"]) >= 15
    unknown = [t for t in EMITTED["auth_error"] if not _covered(t, set(AUTH_ERRORS))]
    assert unknown == [], "add them to AUTH_ERRORS in gamesync/metric_labels.py"


def test_every_auth_failure_label_and_refusal_is_known() -> None:
    assert EMITTED["auth_failed"]
    assert EMITTED["refused"]
    assert [t for t in EMITTED["auth_failed"] if not _covered(t, set(AUTH_FAILURE_REASONS))] == []
    assert [t for t in EMITTED["refused"] if not _covered(t, set(HANDSHAKE_REFUSALS))] == []


def test_every_server_close_is_known() -> None:
    known = {f"{int(code)} {reason}" for code, reason in SERVER_CLOSES}
    assert len(EMITTED["close"]) >= 10
    assert [t for t in EMITTED["close"] if not _covered(t, known)] == []


def test_no_known_reason_is_left_over_from_code_that_changed() -> None:
    """Each listed value is still emitted somewhere (a renamed reason leaves no stale zero)."""

    def emitted(value: str, found: list[str | re.Pattern[str]]) -> bool:
        return any(f == value if isinstance(f, str) else f.fullmatch(value) for f in found)

    assert [r for r in AUTH_ERRORS if not emitted(r, EMITTED["auth_error"])] == []
    extra = set(AUTH_FAILURE_REASONS) - set(AUTH_ERRORS)
    assert [r for r in sorted(extra) if not emitted(r, EMITTED["auth_failed"])] == []
    assert [r for r in HANDSHAKE_REFUSALS if not emitted(r, EMITTED["refused"])] == []
    closes = [
        (code, reason)
        for code, reason in SERVER_CLOSES
        if not (code is Close.UNAUTHORIZED and reason in AUTH_ERRORS)  # closed with exc.message
    ]
    assert [c for c in closes if not emitted(f"{int(c[0])} {c[1]}", EMITTED["close"])] == []
