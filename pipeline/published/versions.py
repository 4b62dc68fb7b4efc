"""Finding versions: ids in their exact shape, the folder `latest` points at, a version's recorded fingerprint."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import StoreError
from pipeline.published.layout import LATEST, MANIFEST, POINTER, VERSION_ID, VERSIONS, check_version_id
from pipeline.published.manifest import read_manifest


def version_ids(out_dir: Path) -> list[str]:
    """Ids of the complete versions, oldest first (real folders named by six digits only)."""
    root = out_dir / VERSIONS
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if VERSION_ID.fullmatch(p.name) and p.is_dir() and not p.is_symlink())


def latest_id(out_dir: Path) -> str | None:
    """The id that `latest` points at (symlink first, then the pointer file).

    A pointer that leads anywhere but ``versions/<six digits>`` is an error, not followed; with
    no pointer at all, the newest complete version is the latest.
    """
    link = out_dir / LATEST
    if link.is_symlink():
        target = link.readlink()
        if len(target.parts) != 2 or target.parts[0] != VERSIONS or not VERSION_ID.fullmatch(target.parts[1]):
            raise StoreError(f"{link} points to {target}, not to {VERSIONS}/<id>; refusing to follow it")
        return target.parts[1]
    pointer = out_dir / POINTER
    if pointer.is_file() and not pointer.is_symlink():
        text = pointer.read_text(encoding="utf-8", errors="replace").strip()
        if text and not VERSION_ID.fullmatch(text):
            raise StoreError(f"{pointer} holds {text[:40]!r}, not a version id; refusing to follow it")
        if text:
            return text
    # No pointer, yet versions: pointers deleted by hand, or a crash between the first version's
    # rename and its pointer's creation. The newest complete version is the latest.
    ids = version_ids(out_dir)
    return ids[-1] if ids else None


def version_path(out_dir: Path, version_id: str | None = None) -> Path:
    """Folder of a version (`latest` when no id is given), always inside ``OUT/versions``."""
    chosen = version_id or latest_id(out_dir)
    if chosen is None:
        raise StoreError(f"no version has been published under {out_dir}")
    check_version_id(chosen)
    root = out_dir / VERSIONS
    path = root / chosen
    if path.is_symlink() or not (path / MANIFEST).is_file() or path.resolve().parent != root.resolve():
        if version_id is None:
            raise StoreError(
                f"latest points to version {chosen}, which does not exist under {out_dir}: point it at an "
                f"existing version (ln -sfn {VERSIONS}/<id> {out_dir / LATEST}) or remove {LATEST} and {POINTER}"
            )
        raise StoreError(f"version {chosen} does not exist under {out_dir}")
    return path


def fingerprint(out_dir: Path, version_id: str | None) -> str | None:
    """The content fingerprint recorded in a version's manifest (None for no version)."""
    if version_id is None:
        return None
    value = read_manifest(version_path(out_dir, version_id)).get("fingerprint")
    return str(value) if value is not None else None
