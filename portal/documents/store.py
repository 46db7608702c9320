"""Render-once document cache keyed by a fingerprint of the document's data.

Content lives in the database (default) or in a storage folder (LABEL_STORAGE=directory),
so several processes share it. A changed fingerprint means the data changed: render again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from portal.models import StoredDocument, utcnow


@dataclass(frozen=True)
class DocumentStorage:
    mode: str  # "database" | "directory"
    directory: Path

    def write(self, doc: StoredDocument, content: bytes) -> None:
        doc.size = len(content)
        if self.mode == "database":
            doc.content, doc.path = content, None
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{doc.owner.replace(':', '-')}-{doc.kind}-{doc.fingerprint[:16]}"
        target = self.directory / name
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(content)
        os.replace(tmp, target)  # atomic: readers never see half a file
        doc.content, doc.path = None, name

    def read(self, doc: StoredDocument) -> bytes | None:
        if doc.content is not None:
            return bytes(doc.content)
        if doc.path:
            path = self.directory / doc.path
            return path.read_bytes() if path.exists() else None
        return None


def cached_document(
    session: Session,
    storage: DocumentStorage,
    owner: str,
    kind: str,
    fingerprint: str,
    media_type: str,
    render: Callable[[], bytes],
) -> tuple[bytes, bool]:
    """The stored bytes when the fingerprint matches, else render and store. Returns (bytes, was_cached)."""
    doc = session.exec(select(StoredDocument).where(StoredDocument.owner == owner, StoredDocument.kind == kind)).first()
    if doc is not None and doc.fingerprint == fingerprint:
        content = storage.read(doc)
        if content is not None:
            return content, True
    content = render()
    if doc is None:
        doc = StoredDocument(owner=owner, kind=kind, fingerprint=fingerprint, media_type=media_type)
    doc.fingerprint, doc.media_type, doc.created_at = fingerprint, media_type, utcnow()
    storage.write(doc, content)
    try:
        with session.begin_nested():
            session.add(doc)
    except IntegrityError:
        pass  # another request stored the same document first; ours is equally valid
    return content, False
