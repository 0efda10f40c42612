"""Signing-key rotation as a pure state machine: (observed keys, status, evidence, now) -> plan.

Keys are staged previous/active/next (DESIGN §4, §5):

- the signer Secret (private, backends only) holds the active and next private keys; its
  annotations record the activation time, the last handled rotate request and revoked kids, so
  one write changes all of them at once;
- the JWKS Secret (public, gateways) holds active + next + the previous keys until they retire;
- status.signingKeys mirrors the schedule (retire times, when next was published).

A plan is executed as up to four writes, in this order: JWKS additions, signer, JWKS, status.
Verifiers learn a key before any signer signs with it (a new active key is always the former
next key, published long before; the next key itself is never used for signing), and a key
leaves the JWKS only after no signer holds it.

A compromise (a rotate request starting with `compromised`) is the exception: every key the
leaked signer Secret ever held is revoked, two fresh keys are made, their public halves are
published first (JWKS additions), then the signer switches, then the revoked kids leave the
JWKS. Tokens of revoked keys are refused from then on, by design.

Every step re-derives what to do from what it observes, so a crash between any two writes is
repaired by the next tick, never by trusting status alone: what status lacks is assumed as late
as possible (keys kept longer, not shorter).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from gamesync.keys import public_jwk
from gamesync_operator.spec import SigningKeysSpec

__all__ = [
    "COMPROMISED",
    "Event",
    "Evidence",
    "KeysStatus",
    "Observed",
    "Plan",
    "Retiring",
    "Signer",
    "plan",
]

#: A rotate-keys annotation value starting with this revokes the old key at once.
COMPROMISED = "compromised"
_REVOKED_KEEP = 16

KeyPair = tuple[dict[str, Any], dict[str, Any]]


@dataclass(frozen=True)
class Signer:
    """The signer Secret's content: private keys, which one signs, and rotation bookkeeping."""

    keys: Mapping[str, Mapping[str, Any]]  # kid -> private JWK
    active: str
    next: str | None
    activated_at: dt.datetime
    generation: int = 1
    handled_request: str | None = None
    revoked: tuple[str, ...] = ()
    revoked_at: dt.datetime | None = None  # when the last compromise revoked keys

    def document(self) -> dict[str, Any]:
        """The signer file (DESIGN §4)."""
        doc: dict[str, Any] = {
            "keys": [dict(self.keys[k]) for k in self._order()],
            "active": self.active,
        }
        if self.next is not None:
            doc["next"] = self.next
        return doc

    def _order(self) -> list[str]:
        return [k for k in (self.active, self.next) if k is not None and k in self.keys]


@dataclass(frozen=True)
class Retiring:
    kid: str
    retire_at: dt.datetime


@dataclass(frozen=True)
class KeysStatus:
    """status.signingKeys."""

    active_kid: str | None = None
    next_kid: str | None = None
    previous: tuple[Retiring, ...] = ()
    phase: str = "Initializing"
    last_rotation_time: dt.datetime | None = None
    next_rotation_time: dt.datetime | None = None
    next_published_time: dt.datetime | None = None
    key_generation: int = 0
    handled_request: str | None = None
    revoked: tuple[str, ...] = ()
    last_revocation_time: dt.datetime | None = None


@dataclass(frozen=True)
class Observed:
    """What exists: the parsed Secrets (None when absent) and the last written status."""

    signer: Signer | None
    jwks: Mapping[str, Mapping[str, Any]] | None  # kid -> public JWK, in file order
    status: KeysStatus


@dataclass(frozen=True)
class Evidence:
    """What the gateways say and what the user asked for."""

    now: dt.datetime
    # The kids each ready gateway reports loaded; None when some ready gateway did not answer.
    pods_kids: tuple[frozenset[str], ...] | None
    rotate_request: str | None = None


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    """What to write, in order; None means that write is not needed."""

    jwks_additions: dict[str, Any] | None
    signer: Signer | None
    jwks: dict[str, Any] | None
    status: KeysStatus
    events: tuple[Event, ...] = ()
    ready: tuple[str, str, str] = ("Unknown", "", "")  # KeysReady: status, reason, message

    def steps(self) -> list[tuple[str, Any]]:
        """Writes in order: ("jwks", doc) | ("signer", Signer) | ("status", KeysStatus)."""
        out: list[tuple[str, Any]] = []
        if self.jwks_additions is not None:
            out.append(("jwks", self.jwks_additions))
        if self.signer is not None:
            out.append(("signer", self.signer))
        if self.jwks is not None:
            out.append(("jwks", self.jwks))
        out.append(("status", self.status))
        return out


def _jwks_doc(keys: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {"keys": [dict(v) for v in keys.values()]}


def _keep_revoked(old: tuple[str, ...], new: list[str]) -> tuple[str, ...]:
    """Revoked kids to remember: every one just revoked, then the most recent older ones."""
    kept = [k for k in old if k not in new] + new
    return tuple(kept[-max(_REVOKED_KEEP, len(new)) :])


def _revocation_event(request: str, now: dt.datetime, gone: list[str], signer: Signer) -> Event:
    return Event(
        "Warning",
        "KeysRevoked",
        f"rotate request {request!r} at {now.isoformat()}: revoked "
        f"{', '.join(gone) or 'no published key'} (tokens they signed are refused once gateways "
        f"load the JWKS); new active key {signer.active}, next {signer.next}",
    )


def _all_loaded(kid: str, pods_kids: tuple[frozenset[str], ...] | None) -> bool:
    return bool(pods_kids) and pods_kids is not None and all(kid in kids for kids in pods_kids)


def plan(
    observed: Observed,
    policy: SigningKeysSpec,
    evidence: Evidence,
    generate: Callable[[], KeyPair],
) -> Plan:
    """Decide the next rotation step. Pure apart from calling `generate` for new keys."""
    now = evidence.now
    status = observed.status
    current_jwks: dict[str, Mapping[str, Any]] = dict(observed.jwks or {})
    retire_after = dt.timedelta(seconds=policy.retire_after)
    events: list[Event] = []
    retiring: dict[str, dt.datetime] = {r.kid: r.retire_at for r in status.previous}
    request = evidence.rotate_request or None

    signer = observed.signer
    new_signer: Signer | None = None
    if signer is None:
        active_priv, _ = generate()
        next_priv, _ = generate()
        new_signer = Signer(
            keys={active_priv["kid"]: active_priv, next_priv["kid"]: next_priv},
            active=active_priv["kid"],
            next=next_priv["kid"],
            activated_at=now,
            generation=status.key_generation + 1,
            handled_request=request,  # a plain rotation of a brand-new key set is moot
        )
        if _compromise(request) and request != status.handled_request:
            # The keys that were published may be the leaked ones: none of them stays.
            gone = sorted(
                set(current_jwks) | {k for k in (status.active_kid, status.next_kid) if k}
            )
            new_signer = replace(new_signer, revoked=_keep_revoked((), gone), revoked_at=now)
            retiring.clear()
            events.append(_revocation_event(request or "", now, gone, new_signer))
        elif status.active_kid is not None:
            events.append(
                Event(
                    "Warning",
                    "SignerRecreated",
                    "the signer Secret was missing; new keys were made",
                )
            )
        else:
            events.append(Event("Normal", "KeysCreated", f"active key {new_signer.active}"))
    else:
        # A crash after an activation but before its status write: the old active key may
        # still be in use by backends that have not seen the new signer Secret yet.
        if (
            status.active_kid is not None
            and status.active_kid != signer.active
            and status.active_kid != signer.next
            and status.active_kid not in signer.revoked
        ):
            retiring.setdefault(status.active_kid, now + retire_after)

        working = signer
        if working.next is None or working.next not in working.keys:
            next_priv, _ = generate()
            working = replace(
                working,
                keys={working.active: working.keys[working.active], next_priv["kid"]: next_priv},
                next=next_priv["kid"],
            )
        assert working.next is not None

        forced = request is not None and request != working.handled_request
        due = now >= working.activated_at + dt.timedelta(seconds=policy.rotation_interval)
        loaded = _all_loaded(working.next, evidence.pods_kids)
        published_at = status.next_published_time if status.next_kid == working.next else None
        lead_passed = published_at is not None and now >= published_at + dt.timedelta(
            seconds=policy.publish_lead
        )
        if forced and _compromise(request):
            # Both private keys sat in the one signer Secret that leaked, and so did every
            # retiring key until its activation ended: revoke them all, start afresh. The new
            # public keys are published before the signer switches (see `additions` below);
            # the revoked ones leave the JWKS in the write after the signer's.
            active_priv, _ = generate()
            next_priv, _ = generate()
            fresh = {active_priv["kid"], next_priv["kid"]}
            stored = set(signer.keys) | set(current_jwks) | set(retiring)
            stored |= {k for k in (status.active_kid, status.next_kid) if k}
            gone = sorted(stored - fresh)
            retiring.clear()
            working = Signer(
                keys={active_priv["kid"]: active_priv, next_priv["kid"]: next_priv},
                active=active_priv["kid"],
                next=next_priv["kid"],
                activated_at=now,
                generation=working.generation + 1,
                handled_request=request,
                revoked=_keep_revoked(working.revoked, gone),
                revoked_at=now,
            )
            events.append(_revocation_event(request or "", now, gone, working))
        elif working.next in current_jwks and (forced or (due and (loaded or lead_passed))):
            old = working.active
            fresh_priv, _ = generate()
            retiring[old] = now + retire_after
            working = Signer(
                keys={working.next: working.keys[working.next], fresh_priv["kid"]: fresh_priv},
                active=working.next,
                next=fresh_priv["kid"],
                activated_at=now,
                generation=working.generation + 1,
                handled_request=request if forced else working.handled_request,
                revoked=working.revoked,
                revoked_at=working.revoked_at,
            )
            if forced:
                events.append(
                    Event("Warning", "KeyRotationForced", f"key {working.active} active now")
                )
            elif loaded:
                events.append(
                    Event("Normal", "KeyActivated", f"key {working.active} active; {old} retiring")
                )
            else:
                events.append(
                    Event(
                        "Warning",
                        "KeyActivatedWithoutEvidence",
                        f"key {working.active} active after the publish lead although not every "
                        "ready gateway reported it loaded",
                    )
                )
        if working != signer:
            new_signer = working

    final = new_signer or signer
    assert final is not None
    assert final.next is not None

    # The desired JWKS: active, next, then keys still retiring (public halves from the JWKS).
    desired: dict[str, Mapping[str, Any]] = {
        final.active: public_jwk(final.keys[final.active]),
        final.next: public_jwk(final.keys[final.next]),
    }
    for kid in current_jwks:
        # A key nobody accounts for (status lost, or generated before a crash): keep it for a
        # full retire period; it may have signed tokens we cannot see.
        if kid not in desired and kid not in retiring and kid not in final.revoked:
            retiring[kid] = now + retire_after
    previous: list[Retiring] = []
    for kid, retire_at in sorted(retiring.items(), key=lambda kv: (kv[1], kv[0])):
        if kid in desired or kid in final.revoked:
            continue
        if retire_at <= now:
            if kid in current_jwks:
                events.append(Event("Normal", "KeyRetired", f"key {kid} removed from the JWKS"))
            continue
        if kid not in current_jwks:
            events.append(
                Event(
                    "Warning",
                    "RetiringKeyLost",
                    f"key {kid} vanished from the JWKS before retiring",
                )
            )
            continue
        desired[kid] = current_jwks[kid]
        previous.append(Retiring(kid, retire_at))

    # Kept keys stay in file order and new ones go last, so a pure addition is one write.
    final_keys = {kid: desired[kid] for kid in current_jwks if kid in desired}
    final_keys.update((kid, jwk) for kid, jwk in desired.items() if kid not in final_keys)
    jwks_final = _jwks_doc(final_keys)
    additions: dict[str, Any] | None = None
    jwks_write: dict[str, Any] | None = None
    if observed.jwks is None or _jwks_doc(current_jwks) != jwks_final:
        jwks_write = jwks_final
    if (
        jwks_write is not None
        and observed.jwks is not None
        and new_signer is not None
        and new_signer.active not in current_jwks
    ):
        # Gateways run on the current JWKS and the signer is about to use a key they lack
        # (after a compromise, or when the signer Secret was lost): publish first; a crash right
        # after leaves public keys nobody can sign with, which a retried compromise revokes and
        # otherwise retire. Else the signer goes first, so that never happens.
        additions = _jwks_doc({**current_jwks, **final_keys})
        if additions == jwks_final:
            jwks_write = None

    if status.next_kid == final.next and status.next_published_time is not None:
        next_published = status.next_published_time
    else:
        next_published = now  # first seen published now (or later than it really was: safe)

    next_loaded = _all_loaded(final.next, evidence.pods_kids)
    if not next_loaded:
        phase = "Publishing"
    elif previous:
        phase = "Retiring"
    else:
        phase = "Steady"
    new_status = KeysStatus(
        active_kid=final.active,
        next_kid=final.next,
        previous=tuple(previous),
        phase=phase,
        last_rotation_time=final.activated_at,
        next_rotation_time=final.activated_at + dt.timedelta(seconds=policy.rotation_interval),
        next_published_time=next_published,
        key_generation=final.generation,
        handled_request=final.handled_request,
        revoked=final.revoked,
        last_revocation_time=final.revoked_at,
    )
    return Plan(
        jwks_additions=additions,
        signer=new_signer,
        jwks=jwks_write,
        status=new_status,
        events=tuple(events),
        ready=_keys_ready(final, evidence),
    )


def _compromise(request: str | None) -> bool:
    return request is not None and request.startswith(COMPROMISED)


def _keys_ready(signer: Signer, evidence: Evidence) -> tuple[str, str, str]:
    if evidence.pods_kids is None:
        return ("Unknown", "NoEvidence", "some ready gateways did not report their loaded keys")
    if not evidence.pods_kids:
        return ("Unknown", "NoReadyGateways", "no ready gateway to confirm the keys")
    missing = sum(1 for kids in evidence.pods_kids if signer.active not in kids)
    if missing:
        return (
            "False",
            "AwaitingPropagation",
            f"{missing} ready gateway(s) have not loaded the active key {signer.active} yet",
        )
    return ("True", "KeysLoaded", f"every ready gateway verifies with {signer.active}")
