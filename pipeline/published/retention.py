"""Retention: versions past --keep pruned; files no kept version lists deleted after a grace period.

A version is pruned by deleting its manifest: it is gone for every reader that looks for it after.
Its files (and those a killed writer left) are garbage only once no kept manifest lists them, and
are deleted only after `grace_s` (``PIPELINE_GC_GRACE_S``): a reader that opened the version before
its prune finishes first. The ledger (``gc/pending.json``) records since when each was garbage; a
prune or a collection killed halfway leaves only garbage, which a later run collects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime

from pipeline.errors import StoreError
from pipeline.published.layout import DATA, GC_LEDGER, INDEX, VERSION_ID, VERSIONS, manifest_key, version_key
from pipeline.published.store import Store


def versions_to_prune(ids: list[str], protected: Iterable[str], keep: int) -> list[str]:
    """The oldest versions beyond the newest `keep` (at least the `protected` ones are kept)."""
    if keep < 1:
        raise StoreError("--keep must be at least 1")
    protected = set(protected)
    removable = [v for v in ids if v not in protected]
    excess = max(len(ids) - max(keep, len(protected & set(ids))), 0)
    return removable[:excess]


def prune(store: Store, keep: int) -> list[str]:
    """Prune the oldest versions so that `keep` remain; never latest nor its parent. Call under
    the writer lock. Their files are left to `collect_garbage`."""
    ids = store.version_ids()
    if not ids:
        return []
    latest = ids[-1]
    parent = store.manifest(latest).parent_id
    removed = versions_to_prune(ids, {latest, *([parent] if parent else [])}, keep)
    for version_id in removed:
        store.storage.delete([manifest_key(version_id)])
        store.forget(version_id)
    return removed


def garbage(keys: Iterable[str], listed: set[str], committed: set[str]) -> list[str]:
    """Of the store's `keys`, those no kept version lists: files of its tables and indexes, and
    what is left in the folders of versions without a manifest (pruned or never committed)."""
    found = []
    for key in keys:
        if key in listed:
            continue
        top = key.split("/", 1)[0]
        if top in (DATA, INDEX):
            found.append(key)
        elif top == VERSIONS:
            parts = key.split("/")
            if len(parts) >= 3 and VERSION_ID.fullmatch(parts[1]) and parts[1] not in committed:
                found.append(key)
    return found


def collect_garbage(store: Store, grace_s: float, now: datetime | None = None) -> list[str]:
    """Delete the files no kept version lists that have been so (by the ledger) and unchanged (by
    their date) for `grace_s` seconds; record the others in the ledger. Call under the writer lock,
    after any commit of the run. Returns the keys deleted."""
    now = now or datetime.now(UTC)
    committed = set(store.version_ids())
    listed: set[str] = set()
    for version_id in committed:
        manifest = store.manifest(version_id)
        listed.update(f.key for f in manifest.data_files())
        listed.update(version_key(version_id, name) for name in manifest.document["files"])
        listed.add(manifest_key(version_id))
    objects = {o.key: o for top in (DATA, INDEX, VERSIONS) for o in store.storage.list(top).objects}
    unlisted = garbage(objects, listed, committed)
    ledger = _ledger(store)
    doomed, pending = [], {}
    for key in unlisted:
        since = ledger.get(key, now)
        if (now - since).total_seconds() >= grace_s and (now - objects[key].modified).total_seconds() >= grace_s:
            doomed.append(key)
        else:
            pending[key] = since
    if doomed:
        store.storage.delete(doomed)
    if pending or ledger:
        document = {key: since.isoformat() for key, since in sorted(pending.items())}
        store.storage.put(GC_LEDGER, (json.dumps(document, indent=1) + "\n").encode())
    return doomed


def _ledger(store: Store) -> dict[str, datetime]:
    """Since when each file has been garbage, as recorded; an unreadable ledger is started anew
    (it only ever delays a deletion)."""
    data = store.storage.get(GC_LEDGER)
    if data is None:
        return {}
    try:
        document = json.loads(data)
        return {str(k): datetime.fromisoformat(str(v)).astimezone(UTC) for k, v in dict(document).items()}
    except (ValueError, TypeError, UnicodeDecodeError):
        return {}
