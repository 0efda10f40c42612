"""Pure helpers of the reconciler: drift comparison, conditions, the key Secrets' codec."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from gsc_builders import make_spec

from gamesync_operator import signing_secrets
from gamesync_operator.reconcile import contains
from gamesync_operator.rotation import Signer
from gamesync_operator.status import Condition, merge_conditions

T0 = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)


def test_contains_ignores_server_added_fields_but_sees_edits_and_removals() -> None:
    wanted = {"spec": {"ports": [{"port": 8000}], "selector": {"a": "b"}}}
    server = {
        "spec": {"ports": [{"port": 8000, "protocol": "TCP"}], "selector": {"a": "b"}, "x": 1}
    }
    assert contains(server, wanted)
    assert not contains({"spec": {"ports": [{"port": 9}], "selector": {"a": "b"}}}, wanted)
    assert not contains({"spec": {"ports": [], "selector": {"a": "b"}}}, wanted)
    assert not contains({"spec": {"ports": [{"port": 8000}]}}, wanted)


@pytest.mark.parametrize(
    ("server", "wanted"), [("1k", "1000"), ("500m", "0.5"), ("1Gi", "1024Mi"), (1, "1"), ("2", 2)]
)
def test_contains_accepts_quantities_the_server_canonicalised(
    server: object, wanted: object
) -> None:
    assert contains({"q": server}, {"q": wanted})


def test_contains_still_sees_a_different_quantity_or_word() -> None:
    assert not contains({"q": "2k"}, {"q": "1000"})
    assert not contains({"q": "http"}, {"q": "https"})
    assert not contains({"q": True}, {"q": 1})


def test_transition_time_moves_only_when_the_status_changes() -> None:
    first = merge_conditions([Condition("Ready", "False", "A", "a")], None, 1, T0)
    later = T0 + dt.timedelta(minutes=5)
    same = merge_conditions([Condition("Ready", "False", "B", "b")], first, 2, later)
    assert same[0]["lastTransitionTime"] == first[0]["lastTransitionTime"]
    assert (same[0]["reason"], same[0]["observedGeneration"]) == ("B", 2)
    flipped = merge_conditions([Condition("Ready", "True", "C", "c")], same, 2, later)
    assert flipped[0]["lastTransitionTime"] == signing_secrets.format_time(later)


def test_signer_secret_round_trips_with_its_bookkeeping() -> None:
    spec = make_spec()
    signer = Signer(
        keys={"a": {"kid": "a", "kty": "oct", "k": "x"}, "b": {"kid": "b", "kty": "oct", "k": "y"}},
        active="a",
        next="b",
        activated_at=T0,
        generation=3,
        handled_request="r-1",
        revoked=("z",),
    )
    secret = signing_secrets.signer_secret(spec, signer)
    assert secret["metadata"]["name"] == "arena-signer"
    assert (
        signing_secrets.signer_from_secret(secret, unknown_activation=T0 + dt.timedelta(days=1))
        == signer
    )


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"signer.json": base64.b64encode(b"not json").decode()},
        {"signer.json": base64.b64encode(b'{"keys": [], "active": "a"}').decode()},
    ],
)
def test_an_unreadable_signer_secret_is_refused_not_overwritten(data: dict[str, str]) -> None:
    secret = {"metadata": {"name": "arena-signer"}, "data": data}
    with pytest.raises(signing_secrets.SigningSecretError):
        signing_secrets.signer_from_secret(secret, unknown_activation=T0)


def test_a_hand_made_signer_secret_without_annotations_counts_from_the_given_time() -> None:
    doc = b'{"keys": [{"kid": "a", "kty": "oct", "k": "x"}], "active": "a"}'
    secret = {"metadata": {"name": "s"}, "data": {"signer.json": base64.b64encode(doc).decode()}}
    signer = signing_secrets.signer_from_secret(secret, unknown_activation=T0)
    assert signer is not None
    assert (signer.activated_at, signer.next, signer.generation) == (T0, None, 1)


def test_an_unreadable_jwks_secret_is_treated_as_absent_because_it_is_derived() -> None:
    assert (
        signing_secrets.jwks_from_secret({"metadata": {"name": "j"}, "data": {"jwks.json": "!!"}})
        is None
    )
    assert signing_secrets.jwks_from_secret(None) is None
