"""KMock plus server-side apply: field managers, managedFields, conflicts and `force`.

KMock 0.8 stores a PATCH as a merge whatever its content type and keeps no managedFields, so
the operator's server-side apply is emulated here, close to the API server's rules
(kubernetes.io/docs/reference/using-api/server-side-apply/):

- every write records which manager owns which fields in `metadata.managedFields` (FieldsV1);
  a POST or a merge/JSON patch is an Update by `?fieldManager=` or else the User-Agent's first
  word, and takes the fields it changed from everyone else;
- an apply (`application/apply-patch+yaml`) conflicts when it sets a field another manager owns
  to a different value, unless `force=true`, which takes those fields over; a field the applier
  owned and no longer applies is removed unless someone else still owns it;
- a write that changes nothing stores no new version (the API server bumps no resourceVersion).

Simplifications: list items are keyed by the merge keys of the kinds the operator writes
(containers and env by name, ports by number and protocol, ...); every other list is atomic;
only main resources are tracked (subresources and the GameSyncCluster go to KMock as before).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import jsonpatch
import kmock
from kmock._internal import dicts

Path = tuple[Any, ...]  # str map keys, or ("k", ((key field, value), ...)) for a list item

APPLY = "application/apply-patch+yaml"
#: Lists merged item by item, by these key fields (the rest are atomic, replaced whole).
_LIST_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "ownerReferences": ("uid",),
    "imagePullSecrets": ("name",),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
}
_UNTRACKED_META = {
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "managedFields",
    "selfLink",
}


def _keys(name: Any, items: list[Any]) -> tuple[str, ...] | None:
    if not items or not all(isinstance(i, Mapping) for i in items):
        return None
    if name == "ports":  # containers' ports and Services' ports
        return (
            ("containerPort", "protocol") if "containerPort" in items[0] else ("port", "protocol")
        )
    return _LIST_KEYS.get(name) if isinstance(name, str) else None


def _item_key(item: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[str, Any]:
    return ("k", tuple(sorted((k, item.get(k)) for k in keys)))


def _tracked(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The part of an object that field managers can own."""
    out = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status")}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _UNTRACKED_META}
    out["metadata"] = meta
    return out


def leaves(value: Any, path: Path = ()) -> dict[Path, Any]:
    """Every owned leaf of `value` with its value (empty maps and atomic lists are leaves)."""
    if isinstance(value, Mapping):
        if not value and path:
            return {path: {}}
        out: dict[Path, Any] = {}
        for key, child in value.items():
            out.update(leaves(child, (*path, key)))
        return out
    if isinstance(value, list) and (keys := _keys(path[-1] if path else None, value)):
        out = {}
        for item in value:
            out.update(leaves(item, (*path, _item_key(item, keys))))
        return out
    return {path: value}


def _token(element: Any) -> str:
    if isinstance(element, str):
        return f"f:{element}"
    return "k:" + json.dumps(dict(element[1]), sort_keys=True, separators=(",", ":"))


def to_fields(paths: set[Path]) -> dict[str, Any]:
    """FieldsV1 of a set of paths."""
    root: dict[str, Any] = {}
    for path in paths:
        node = root
        for element in path:
            node = node.setdefault(_token(element), {})
    return root


def from_fields(fields: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for token, child in fields.items():
        if token == ".":
            continue
        if token.startswith("k:"):
            element: Any = ("k", tuple(sorted(json.loads(token[2:]).items())))
        else:
            element = token[2:]
        if child and set(child) != {"."}:
            out |= from_fields(child, (*prefix, element))
        else:
            out.add((*prefix, element))
    return out


def _under(path: Path, prefix: Path) -> bool:
    return path[: len(prefix)] == prefix


def _merge(base: Any, patch: Any, path: Path = ()) -> Any:
    """`patch` applied over `base`: maps merge, keyed lists merge by item, the rest replace."""
    if isinstance(base, Mapping) and isinstance(patch, Mapping):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _merge(base.get(key), value, (*path, key)) if key in base else value
        return out
    if isinstance(base, list) and isinstance(patch, list):
        keys = _keys(path[-1] if path else None, patch) or _keys(path[-1] if path else None, base)
        if keys:
            merged = [copy.deepcopy(i) for i in base]
            index = {_item_key(i, keys): n for n, i in enumerate(merged)}
            for item in patch:
                key = _item_key(item, keys)
                if key in index:
                    merged[index[key]] = _merge(merged[index[key]], item, (*path, key))
                else:
                    merged.append(copy.deepcopy(item))
            return merged
    return copy.deepcopy(patch)


def _remove(obj: dict[str, Any], path: Path) -> None:
    """Delete the field or list item at `path`, then any map the deletion left empty."""
    parents: list[tuple[Any, Any]] = []
    node: Any = obj
    for element in path:
        if isinstance(element, str):
            if not isinstance(node, dict) or element not in node:
                return
            parents.append((node, element))
            node = node[element]
        else:
            if not isinstance(node, list):
                return
            keys = tuple(k for k, _ in element[1])
            match = next((i for i in node if _item_key(i, keys) == element), None)
            if match is None:
                return
            parents.append((node, match))
            node = match
    for container, key in reversed(parents):
        if isinstance(container, dict):
            del container[key]
        else:
            container.remove(key)
        if container:
            break


def _describe(path: Path) -> str:
    out = ""
    for element in path:
        if isinstance(element, str):
            out += f".{element}"
        else:
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in element[1]) + "]"
    return out


def _entries(obj: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    return [dict(e) for e in ((obj or {}).get("metadata") or {}).get("managedFields") or []]


def _owned(entry: Mapping[str, Any]) -> set[Path]:
    return from_fields(entry.get("fieldsV1") or {})


def _entry(manager: str, operation: str, api_version: str, paths: set[Path]) -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields(paths),
    }


def _conflict(obj: Mapping[str, Any], found: list[tuple[Path, str]]) -> kmock.KubernetesError:
    causes = [
        {
            "type": "FieldManagerConflict",
            "message": f'conflict with "{manager}" using {obj.get("apiVersion")}',
            "field": _describe(path),
        }
        for path, manager in found
    ]
    summary = "; ".join(f"{c['message']}: {c['field']}" for c in causes)
    return kmock.KubernetesError(
        status=409,
        reason="Conflict",
        message=f"Apply failed with {len(causes)} conflict(s): {summary}",
        details={"name": obj.get("metadata", {}).get("name"), "causes": causes},
    )


def apply(
    old: Mapping[str, Any] | None, config: Mapping[str, Any], manager: str, force: bool
) -> dict[str, Any]:
    """The object after `manager` applies `config` over `old`; KubernetesError on conflicts."""
    api_version = str(config.get("apiVersion"))
    wanted = leaves(_tracked(config))
    entries = _entries(old)
    mine = next((e for e in entries if e["manager"] == manager and e["operation"] == "Apply"), None)
    others = [e for e in entries if e is not mine]
    current = leaves(_tracked(old)) if old is not None else {}
    found = [
        (path, str(e["manager"]))
        for e in others
        for path in sorted(_owned(e) & set(wanted), key=repr)
        if path in current and current[path] != wanted[path]
    ]
    if found and not force:
        raise _conflict(config, found)
    taken = {path for path, _ in found}
    new_entries = []
    for e in others:
        kept = _owned(e) - taken
        if kept:
            new_entries.append({**e, "fieldsV1": to_fields(kept)})
    result = _merge(copy.deepcopy(dict(old)) if old is not None else {}, config)
    still_owned = set().union(*(_owned(e) for e in new_entries)) if new_entries else set()
    released = (_owned(mine) if mine else set()) - set(wanted)
    kept = still_owned | set(wanted)
    # A list item none of whose fields anyone still claims goes as a whole (its key fields
    # with it); otherwise single fields go, unless someone else owns them.
    items = {p[: n + 1] for p in released for n, e in enumerate(p) if not isinstance(e, str)}
    gone = {q for q in items if not any(_under(p, q) for p in kept)}
    gone = {q for q in gone if not any(q != r and _under(q, r) for r in gone)}
    for path in sorted(gone, key=len, reverse=True):
        _remove(result, path)
    for path in sorted(released, key=len, reverse=True):
        if any(_under(path, q) for q in gone):
            continue
        if not any(_under(p, path) or _under(path, p) for p in still_owned):
            _remove(result, path)
    new_entries.append(_entry(manager, "Apply", api_version, set(wanted)))
    result.setdefault("metadata", {})["managedFields"] = new_entries
    return result


def update(old: Mapping[str, Any] | None, new: dict[str, Any], manager: str) -> dict[str, Any]:
    """`new` with managedFields after an Update by `manager` (changed fields become its own)."""
    before = leaves(_tracked(old)) if old is not None else {}
    after = leaves(_tracked(new))
    changed = {p for p, v in after.items() if before.get(p, object()) != v}
    gone = set(before) - set(after)
    entries = []
    given = _entries(new)
    # A write that sets managedFields itself (an ownership upgrade) is taken as given.
    base = given if old is not None and given != _entries(old) else _entries(old)
    for e in base:
        kept = _owned(e) - changed - gone
        if e["manager"] == manager and e["operation"] == "Update":
            changed |= kept
            continue
        if kept:
            entries.append({**e, "fieldsV1": to_fields(kept)})
    if changed:
        entries.append(_entry(manager, "Update", str(new.get("apiVersion")), changed))
    new.setdefault("metadata", {})["managedFields"] = entries
    return new


@attrs.define(kw_only=True)
class ApplyEmulator(kmock.KubernetesEmulator):
    """KubernetesEmulator whose main-resource writes follow server-side apply's ownership."""

    untracked_groups: frozenset[str] = frozenset({"gamesync.nommie.dev", "events.k8s.io"})
    #: API groups the emulated cluster does not serve: every request gets the test's reaction.
    unserved_groups: frozenset[str] = frozenset()

    def _tracks(self, request: kmock.Request) -> bool:
        res = request.resource
        return (
            res is not None
            and request.subresource is None
            and request.action in (kmock.action.CREATE, kmock.action.UPDATE)
            and res.group not in self.untracked_groups
            and res.plural != "events"
        )

    @staticmethod
    def _manager(request: kmock.Request) -> str:
        given = request.params.get("fieldManager")
        if given:
            return str(given)
        agent = request.headers.get("User-Agent", "unknown")
        return agent.split("/", 1)[0]

    async def _handle(self, request: kmock.Request) -> Any:
        if request.resource is not None and request.resource.group in self.unserved_groups:
            raise kmock.KubernetesError(
                status=404,
                reason="NotFound",
                message="the server could not find the requested resource",
            )
        if not self._tracks(request):
            return await super()._handle(request)
        async with self._lock:
            await self._write(request)
        # Respond as KMock does (user reactions first, else the stored object), skipping
        # KubernetesEmulator's own write: it is done above.
        return await super(kmock.KubernetesEmulator, self)._handle(request)

    def _stored(self, key: tuple[Any, Any, Any]) -> Any:
        """The stored kmock Object under `key`, or None (ObjectsArray has no .get)."""
        return self._objects[key] if key in self._objects else None  # noqa: SIM401

    async def _write(self, request: kmock.Request) -> None:
        assert request.resource is not None
        body = request.data
        if not isinstance(body, (dict, list)):
            body = json.loads(request.text or "{}")
        manager = self._manager(request)
        if request.action == kmock.action.CREATE:
            meta = body.get("metadata", {})
            key = (request.resource, request.namespace or meta.get("namespace"), meta.get("name"))
            existing = self._stored(key)
            if existing is not None and not existing.deleted:
                raise kmock.KubernetesError(
                    status=409, reason="AlreadyExists", message=f"{meta.get('name')} exists"
                )
            new = update(None, copy.deepcopy(body), manager)
            if existing is not None:
                existing.create(new)
            else:
                self._objects[key] = new
            await self._buses[request.resource].put({"type": "ADDED", "object": new})
            return
        key = (request.resource, request.namespace, request.name)
        existing = self._stored(key)
        old = None if existing is None or existing.deleted else copy.deepcopy(existing.raw)
        content_type = request.headers.get("Content-Type", "")
        if content_type.startswith(APPLY):
            force = request.params.get("force", "false").lower() == "true"
            new = apply(old, body, manager, force)
        elif old is None:
            raise kmock.KubernetesError(status=404, reason="NotFound", message="not found")
        elif isinstance(body, list):
            new = update(old, jsonpatch.apply_patch(old, body), manager)
        else:
            new = update(old, dicts.patch_dict(copy.deepcopy(old), body), manager)
        if new == old:
            return  # nothing changed: no new version, no watch event
        if existing is None:
            self._objects[key] = new
            await self._buses[request.resource].put({"type": "ADDED", "object": new})
        else:
            existing.history.append(new)
            await self._buses[request.resource].put({"type": "MODIFIED", "object": new})


def managers(obj: Mapping[str, Any] | None) -> Iterator[tuple[str, str, set[Path]]]:
    """(manager, operation, owned paths) of each managedFields entry, for assertions."""
    for e in _entries(obj):
        yield e["manager"], e["operation"], _owned(e)
