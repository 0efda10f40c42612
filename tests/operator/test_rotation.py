"""The key-rotation state machine over synthetic timelines, with crashes between any two writes.

A simulated world keeps the history of both Secrets. Gateways see the JWKS and backends see
the signer Secret each with its own propagation delay (at most the publish lead, the bound the
spec promises). Every tick each backend signs a token with the active key it sees; the test
checks that every gateway can verify every token that is still live, at every tick.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from gsc_builders import make_spec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gamesync.keys import generate_key
from gamesync_operator import rotation, signing_secrets
from gamesync_operator.rotation import Evidence, KeysStatus, Observed, Plan, plan
from gamesync_operator.spec import ClusterSpec

T0 = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


def _spec() -> ClusterSpec:
    return make_spec(
        signingKeys={
            "rotationInterval": "2h",
            "maxTokenLifetime": "30m",
            "clockSkew": "60s",
            "publishLead": "5m",
        }
    )


class Keys:
    """Deterministic kids, real ES256 keys."""

    def __init__(self) -> None:
        self.count = itertools.count(1)

    def __call__(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return generate_key("ES256", kid=f"k{next(self.count)}")


@dataclass
class World:
    """The two Secrets and status as stored, with every version kept by write time."""

    spec: ClusterSpec
    signer_versions: list[tuple[dt.datetime, dict[str, Any]]] = field(default_factory=list)
    jwks_versions: list[tuple[dt.datetime, dict[str, Any]]] = field(default_factory=list)
    status: KeysStatus = field(default_factory=KeysStatus)
    activations: list[tuple[dt.datetime, str]] = field(default_factory=list)

    def observed(self, now: dt.datetime) -> Observed:
        signer_secret = self.signer_versions[-1][1] if self.signer_versions else None
        jwks_secret = self.jwks_versions[-1][1] if self.jwks_versions else None
        return Observed(
            signing_secrets.signer_from_secret(signer_secret, unknown_activation=now),
            signing_secrets.jwks_from_secret(jwks_secret),
            self.status,
        )

    def execute(self, step_plan: Plan, now: dt.datetime, crash_after: int | None = None) -> None:
        """Apply the plan's writes in order; stop after `crash_after` writes (a crash)."""
        for index, (kind, payload) in enumerate(step_plan.steps()):
            if crash_after is not None and index >= crash_after:
                return
            if kind == "jwks":
                self.jwks_versions.append((now, signing_secrets.jwks_secret(self.spec, payload)))
            elif kind == "signer":
                before = self.signer_at(now)
                self.signer_versions.append(
                    (now, signing_secrets.signer_secret(self.spec, payload))
                )
                if before is None or before.active != payload.active:
                    self.activations.append((now, payload.active))
            else:
                self.status = payload

    def signer_at(self, when: dt.datetime) -> rotation.Signer | None:
        seen = [s for t, s in self.signer_versions if t <= when]
        return (
            signing_secrets.signer_from_secret(seen[-1], unknown_activation=when) if seen else None
        )

    def jwks_kids_at(self, when: dt.datetime) -> frozenset[str]:
        seen = [s for t, s in self.jwks_versions if t <= when]
        return frozenset(signing_secrets.jwks_from_secret(seen[-1]) or {}) if seen else frozenset()


@dataclass(frozen=True)
class Token:
    kid: str
    expires: dt.datetime


@dataclass
class Fleet:
    """Gateways that see the JWKS late, backends that see the signer Secret late."""

    world: World
    gateway_delays: list[dt.timedelta]
    backend_delays: list[dt.timedelta]
    tokens: list[Token] = field(default_factory=list)

    def loaded(self, now: dt.datetime) -> tuple[frozenset[str], ...]:
        """Kids loaded by each ready gateway (one that has seen no JWKS yet is not ready)."""
        views = (self.world.jwks_kids_at(now - d) for d in self.gateway_delays)
        return tuple(v for v in views if v)

    def sign(self, now: dt.datetime) -> None:
        lifetime = dt.timedelta(seconds=self.world.spec.signing_keys.max_token_lifetime)
        for delay in self.backend_delays:
            signer = self.world.signer_at(now - delay)
            if signer is not None:
                self.tokens.append(Token(signer.active, now + lifetime))

    def refused(self, now: dt.datetime, revoked: set[str]) -> list[str]:
        self.tokens = [t for t in self.tokens if t.expires > now]  # expired ones are refused anyway
        loaded = self.loaded(now)
        out = []
        for token in set(self.tokens):
            if token.kid in revoked:
                continue
            for index, kids in enumerate(loaded):
                if token.kid not in kids:
                    out.append(f"{now}: gateway {index} refuses a live token of {token.kid}")
        return out


def run_timeline(
    *,
    hours: float,
    crash: Any = None,
    gateway_delays: tuple[int, ...] = (0, 2, 4),
    backend_delays: tuple[int, ...] = (0, 3, 5),
    stuck_gateway: bool = False,
) -> tuple[World, Fleet, list[str]]:
    """Tick every minute; `crash(tick, steps)` returns how many writes happen before a crash."""
    world = World(_spec())
    fleet = Fleet(world, [d * MINUTE for d in gateway_delays], [d * MINUTE for d in backend_delays])
    keys = Keys()
    problems: list[str] = []
    for tick in range(int(hours * 60)):
        now = T0 + tick * MINUTE
        pods = fleet.loaded(now)
        if stuck_gateway and world.jwks_versions:
            first = world.jwks_kids_at(world.jwks_versions[0][0])
            pods = (*pods[:-1], first)  # one gateway never reloads after the first JWKS
        step = plan(world.observed(now), world.spec.signing_keys, Evidence(now, pods), keys)
        crash_after = crash(tick, len(step.steps())) if crash else None
        world.execute(step, now, crash_after)
        signer = world.signer_at(now)
        if (
            signer is not None
            and world.jwks_versions
            and signer.active not in world.jwks_kids_at(now)
        ):
            problems.append(f"{now}: signer's active {signer.active} is not in the JWKS")
        if signer is not None and set(signer.keys) - {signer.active, signer.next}:
            problems.append(f"{now}: signer holds retired private keys {set(signer.keys)}")
        if len(world.jwks_kids_at(now)) > 3:  # active, next, one retiring
            problems.append(f"{now}: JWKS grew to {sorted(world.jwks_kids_at(now))}")
        fleet.sign(now)
        if not stuck_gateway:
            problems += fleet.refused(now, set())
    return world, fleet, problems


def test_scheduled_rotations_never_refuse_a_live_token() -> None:
    world, _, problems = run_timeline(hours=12)
    assert problems == []
    # Bootstrap plus one activation per 2 h interval.
    assert len(world.activations) == 6
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(world.activations)]
    assert all(dt.timedelta(hours=2) <= g <= dt.timedelta(hours=2, minutes=10) for g in gaps)


def test_old_keys_leave_the_jwks_after_the_retire_bound() -> None:
    world, _, problems = run_timeline(hours=5)
    assert problems == []
    spec = world.spec.signing_keys
    (_, first_kid), (second_at, _) = world.activations[:2]
    retire = second_at + dt.timedelta(seconds=spec.retire_after)
    assert first_kid in world.jwks_kids_at(retire - MINUTE)
    assert first_kid not in world.jwks_kids_at(retire + MINUTE)


@pytest.mark.parametrize("writes_before_crash", [0, 1, 2, 3])
def test_a_crash_after_any_write_is_repaired_without_refusing_tokens(
    writes_before_crash: int,
) -> None:
    def crash(tick: int, steps: int) -> int | None:
        # Crash on two ticks out of three whenever the plan has a write after that point.
        return writes_before_crash if tick % 3 != 2 and steps > writes_before_crash else None

    world, _, problems = run_timeline(hours=8, crash=crash)
    assert problems == []
    assert len(world.activations) >= 4


@pytest.mark.parametrize("seed", range(6))
def test_random_crashes_between_writes_never_refuse_tokens(seed: int) -> None:
    rng = random.Random(seed)

    def crash(tick: int, steps: int) -> int | None:
        return rng.randrange(steps) if rng.random() < 0.4 else None

    world, _, problems = run_timeline(hours=8, crash=crash)
    assert problems == []
    assert len(world.activations) >= 4


def test_activation_waits_for_all_gateways_then_falls_back_to_the_lead_with_a_warning() -> None:
    spec = _spec()
    keys = Keys()
    world = World(spec)
    world.execute(plan(world.observed(T0), spec.signing_keys, Evidence(T0, ()), keys), T0)
    signer = world.signer_at(T0)
    assert signer is not None
    due = T0 + dt.timedelta(hours=2)
    # Due, one of two gateways lacks next, the lead has not passed since publication: wait.
    world.status = rotation.KeysStatus(
        **{**world.status.__dict__, "next_published_time": due - MINUTE}
    )
    lagging = (frozenset({signer.active, signer.next}), frozenset({signer.active}))
    waiting = plan(world.observed(due), spec.signing_keys, Evidence(due, lagging), keys)
    assert waiting.signer is None
    assert waiting.status.phase == "Publishing"
    # Nobody answered for sure (a ready pod without stats): still wait.
    unknown = plan(world.observed(due), spec.signing_keys, Evidence(due, None), keys)
    assert unknown.signer is None
    assert unknown.ready[1] == "NoEvidence"
    # Lead passed: activate anyway, and say so.
    late = due + dt.timedelta(minutes=5)
    forced = plan(world.observed(late), spec.signing_keys, Evidence(late, lagging), keys)
    assert forced.signer is not None
    assert forced.signer.active == signer.next
    assert [e.reason for e in forced.events] == ["KeyActivatedWithoutEvidence"]
    assert forced.events[0].type == "Warning"


def test_evidence_from_every_gateway_activates_on_schedule() -> None:
    spec = _spec()
    keys = Keys()
    world = World(spec)
    world.execute(plan(world.observed(T0), spec.signing_keys, Evidence(T0, ()), keys), T0)
    signer = world.signer_at(T0)
    assert signer is not None
    both = (frozenset({signer.active, signer.next}),) * 3
    early = plan(
        world.observed(T0 + dt.timedelta(minutes=119)),
        spec.signing_keys,
        Evidence(T0 + dt.timedelta(minutes=119), both),
        keys,
    )
    assert early.signer is None
    assert early.status.phase == "Steady"
    on_time = T0 + dt.timedelta(hours=2)
    step = plan(world.observed(on_time), spec.signing_keys, Evidence(on_time, both), keys)
    assert step.signer is not None
    assert step.signer.active == signer.next
    assert step.signer.generation == signer.generation + 1
    assert [e.reason for e in step.events] == ["KeyActivated"]
    assert [r.kid for r in step.status.previous] == [signer.active]
    assert step.status.previous[0].retire_at == on_time + dt.timedelta(
        seconds=spec.signing_keys.retire_after
    )


def test_a_stuck_gateway_delays_activation_to_the_lead_but_rotation_continues() -> None:
    world, _, problems = run_timeline(hours=7, stuck_gateway=True)
    assert problems == []
    assert len(world.activations) >= 3


def _bootstrapped(keys: Keys) -> tuple[World, rotation.Signer]:
    spec = _spec()
    world = World(spec)
    world.execute(plan(world.observed(T0), spec.signing_keys, Evidence(T0, ()), keys), T0)
    signer = world.signer_at(T0)
    assert signer is not None
    return world, signer


def test_rotate_annotation_forces_one_immediate_rotation() -> None:
    keys = Keys()
    world, signer = _bootstrapped(keys)
    now = T0 + dt.timedelta(minutes=10)
    pods = (frozenset({signer.active}),)  # nobody has loaded next: a force does not wait
    step = plan(
        world.observed(now), world.spec.signing_keys, Evidence(now, pods, "2026-11-26T00:10"), keys
    )
    assert step.signer is not None
    assert step.signer.active == signer.next
    assert step.signer.handled_request == "2026-11-26T00:10"
    assert [e.reason for e in step.events] == ["KeyRotationForced"]
    assert signer.active in {r.kid for r in step.status.previous}  # not compromised: retires later
    world.execute(step, now)
    again = plan(
        world.observed(now + MINUTE),
        world.spec.signing_keys,
        Evidence(now + MINUTE, pods, "2026-11-26T00:10"),
        keys,
    )
    assert again.signer is None  # the same request is handled once


@pytest.mark.parametrize("writes_before_crash", [None, 0, 1, 2, 3])
def test_a_compromise_revokes_active_and_next_and_starts_afresh_even_across_a_crash(
    writes_before_crash: int | None,
) -> None:
    keys = Keys()
    world, signer = _bootstrapped(keys)
    leaked = {signer.active, signer.next}
    now = T0 + dt.timedelta(minutes=10)
    pods = (frozenset(leaked),)
    step = plan(
        world.observed(now), world.spec.signing_keys, Evidence(now, pods, "compromised-1"), keys
    )
    assert [e.reason for e in step.events] == ["KeysRevoked"]
    assert [kind for kind, _ in step.steps()] == ["jwks", "signer", "jwks", "status"]
    world.execute(step, now, writes_before_crash)
    later = now + MINUTE
    repair = plan(
        world.observed(later), world.spec.signing_keys, Evidence(later, pods, "compromised-1"), keys
    )
    world.execute(repair, later)
    final = world.signer_at(later)
    assert final is not None
    # Neither leaked key survives anywhere: not as active (the old code promoted `next`), not
    # as next, not in the JWKS.
    assert not leaked & set(final.keys)
    assert world.jwks_kids_at(later) == {final.active, final.next}
    assert leaked <= set(final.revoked)
    assert final.revoked_at is not None
    assert world.status.revoked == final.revoked
    assert world.status.last_revocation_time == final.revoked_at
    # Exactly one switch for the one request, crash or not.
    assert [kid for _, kid in world.activations] == [signer.active, final.active]
    again = plan(
        world.observed(later + MINUTE),
        world.spec.signing_keys,
        Evidence(later + MINUTE, pods, "compromised-1"),
        keys,
    )
    assert again.signer is None  # handled once


def test_a_compromise_also_revokes_a_key_that_is_still_retiring() -> None:
    keys = Keys()
    world, signer = _bootstrapped(keys)
    due = T0 + dt.timedelta(hours=2)
    both = (frozenset({signer.active, signer.next}),)
    world.execute(
        plan(world.observed(due), world.spec.signing_keys, Evidence(due, both), keys), due
    )
    assert [r.kid for r in world.status.previous] == [signer.active]
    now = due + MINUTE
    step = plan(
        world.observed(now), world.spec.signing_keys, Evidence(now, (), "compromised-2"), keys
    )
    world.execute(step, now)
    final = world.signer_at(now)
    assert final is not None
    assert signer.active in final.revoked  # it sat in the leaked Secret until its activation
    assert world.status.previous == ()
    assert world.jwks_kids_at(now) == {final.active, final.next}


# Property: whatever the crash points, a compromise ends with the leaked keys refused by every
# gateway that has seen the new JWKS, and the new active key accepted, never un-published.
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    minutes_before=st.integers(0, 200),
    crashes=st.lists(st.one_of(st.none(), st.integers(0, 3)), min_size=1, max_size=4),
    gateway_delays=st.lists(st.integers(0, 5), min_size=1, max_size=3),
)
def test_after_a_compromise_revoked_keys_are_refused_and_the_new_key_never_is(
    minutes_before: int, crashes: list[int | None], gateway_delays: list[int]
) -> None:
    world = World(_spec())
    keys = Keys()
    writes: list[tuple[int, str, frozenset[str]]] = []  # (tick, jwks|signer, kids)
    now = T0

    def tick(request: str | None, crash_after: int | None) -> None:
        views = tuple(world.jwks_kids_at(now - d * MINUTE) for d in gateway_delays)
        step = plan(
            world.observed(now),
            world.spec.signing_keys,
            Evidence(now, tuple(v for v in views if v), request),
            keys,
        )
        for index, (kind, payload) in enumerate(step.steps()):
            if crash_after is not None and index >= crash_after:
                break
            if kind == "jwks":
                writes.append((len(writes), "jwks", frozenset(k["kid"] for k in payload["keys"])))
            elif kind == "signer":
                writes.append((len(writes), "signer", frozenset({payload.active})))
        world.execute(step, now, crash_after)

    for _ in range(1 + minutes_before):  # bootstrap, maybe a rotation: a key may be retiring
        tick(None, None)
        now += MINUTE
    before = world.signer_at(now)
    assert before is not None
    leaked = {before.active, before.next} | {r.kid for r in world.status.previous}
    start = len(writes)
    for crash_after in [*crashes, None, None]:  # crashes, then passes that complete
        tick("compromised-x", crash_after)
        now += MINUTE
    after = world.signer_at(now)
    assert after is not None
    new = after.active
    assert leaked <= set(after.revoked)
    assert not leaked & set(after.keys)
    # The new active key was published before any signer held it, and never left the JWKS.
    jwks_writes = [(n, kids) for n, kind, kids in writes[start:] if kind == "jwks"]
    signer_switch = next(n for n, kind, kids in writes[start:] if kind == "signer" and new in kids)
    first_with_new = next(n for n, kids in jwks_writes if new in kids)
    assert first_with_new < signer_switch
    assert all(new in kids for n, kids in jwks_writes if n >= first_with_new)
    # Once a JWKS without the leaked keys is written, no later one brings any of them back.
    cleared = next(n for n, kids in jwks_writes if new in kids and not kids & leaked)
    assert all(not kids & leaked for n, kids in jwks_writes if n >= cleared)
    # So every gateway that has seen it refuses leaked tokens and accepts the new key's.
    settled = now + max(gateway_delays) * MINUTE
    for delay in gateway_delays:
        view = world.jwks_kids_at(settled - delay * MINUTE)
        assert new in view
        assert not view & leaked


def test_signer_secret_lost_makes_new_keys_and_keeps_old_public_keys_until_retired() -> None:
    keys = Keys()
    world, signer = _bootstrapped(keys)
    world.signer_versions.clear()  # deleted by hand
    now = T0 + dt.timedelta(minutes=30)
    step = plan(world.observed(now), world.spec.signing_keys, Evidence(now, ()), keys)
    assert [e.reason for e in step.events] == ["SignerRecreated"]
    world.execute(step, now)
    kids = world.jwks_kids_at(now)
    assert {signer.active, signer.next} <= kids  # old tokens still verify
    retire = {r.kid: r.retire_at for r in world.status.previous}
    assert retire[signer.active] == now + dt.timedelta(seconds=world.spec.signing_keys.retire_after)


def test_an_unknown_key_in_the_jwks_is_kept_for_a_full_retire_period_then_removed() -> None:
    keys = Keys()
    world, _ = _bootstrapped(keys)
    _, stray = generate_key("ES256", kid="stray")
    doc = {
        "keys": [
            *(signing_secrets.jwks_from_secret(world.jwks_versions[-1][1]) or {}).values(),
            stray,
        ]
    }
    world.jwks_versions.append((T0, signing_secrets.jwks_secret(world.spec, doc)))
    now = T0 + MINUTE
    world.execute(plan(world.observed(now), world.spec.signing_keys, Evidence(now, ()), keys), now)
    assert "stray" in world.jwks_kids_at(now)
    gone = now + dt.timedelta(seconds=world.spec.signing_keys.retire_after)
    step = plan(world.observed(gone), world.spec.signing_keys, Evidence(gone, ()), keys)
    assert "KeyRetired" in [e.reason for e in step.events]
    world.execute(step, gone)
    assert "stray" not in world.jwks_kids_at(gone)


def test_keys_ready_reports_gateways_missing_the_active_key() -> None:
    keys = Keys()
    world, signer = _bootstrapped(keys)
    obs = world.observed(T0)
    lagging = plan(
        obs, world.spec.signing_keys, Evidence(T0, (frozenset(), frozenset({signer.active}))), keys
    )
    assert lagging.ready[:2] == ("False", "AwaitingPropagation")
    ok = plan(obs, world.spec.signing_keys, Evidence(T0, (frozenset({signer.active}),)), keys)
    assert ok.ready[:2] == ("True", "KeysLoaded")
    assert plan(obs, world.spec.signing_keys, Evidence(T0, ()), keys).ready[:2] == (
        "Unknown",
        "NoReadyGateways",
    )


def test_a_steady_state_plan_writes_only_nothing_new() -> None:
    keys = Keys()
    world, signer = _bootstrapped(keys)
    pods = (frozenset({signer.active, signer.next}),)
    now = T0 + MINUTE
    world.execute(
        plan(world.observed(now), world.spec.signing_keys, Evidence(now, pods), keys), now
    )
    step = plan(
        world.observed(now + MINUTE), world.spec.signing_keys, Evidence(now + MINUTE, pods), keys
    )
    assert step.jwks_additions is None
    assert step.signer is None
    assert step.jwks is None
    assert [kind for kind, _ in step.steps()] == ["status"]


def test_status_round_trips_through_its_dict_form() -> None:
    keys = Keys()
    world, _ = _bootstrapped(keys)
    now = T0 + dt.timedelta(hours=2, minutes=1)
    signer = world.signer_at(T0)
    assert signer is not None
    pods = (frozenset({signer.active, signer.next}),)
    step = plan(world.observed(now), world.spec.signing_keys, Evidence(now, pods), keys)
    assert step.status.previous
    assert (
        signing_secrets.keys_status_from_dict(signing_secrets.keys_status_to_dict(step.status))
        == step.status
    )


# Property: whatever the schedule of crashes and operator outages, no live token is refused.
_ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("run"), st.integers(1, 60)),  # the operator runs N minutes
        st.tuples(st.just("crash"), st.integers(0, 3)),  # the next pass stops after K writes
        st.tuples(st.just("outage"), st.integers(1, 240)),  # the operator is down N minutes
    ),
    min_size=1,
    max_size=14,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=_ACTIONS, delays=st.lists(st.integers(0, 5), min_size=1, max_size=4))
def test_no_schedule_of_crashes_and_outages_refuses_a_live_token(
    actions: list[tuple[str, int]], delays: list[int]
) -> None:
    world = World(_spec())
    fleet = Fleet(world, [d * MINUTE for d in delays], [d * MINUTE for d in (0, *delays)])
    keys = Keys()
    now = T0
    crash_next: int | None = None
    problems: list[str] = []

    def minute(operator_up: bool) -> None:
        nonlocal crash_next
        if operator_up:
            step = plan(
                world.observed(now), world.spec.signing_keys, Evidence(now, fleet.loaded(now)), keys
            )
            world.execute(step, now, crash_next)
            crash_next = None
        fleet.sign(now)
        problems.extend(fleet.refused(now, set()))

    for kind, amount in actions:
        if kind == "crash":
            crash_next = amount
            continue
        for _ in range(amount):
            minute(operator_up=kind == "run")
            now += MINUTE
    assert problems == []
    signer = world.signer_at(now)
    if signer is not None and world.jwks_versions:
        assert signer.active in world.jwks_kids_at(now)
