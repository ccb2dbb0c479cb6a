"""Row types shared by several catalog handlers (subjects and packages appear in many lists)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from handlers._common import LinkedSubject, ProjectType
from handlers._media import MediaUrls

# Every package list is newest first; id breaks ties so pages are stable.
PACKAGE_ORDER = "p.ingested_at DESC, p.id DESC"


class Subject(msgspec.Struct, kw_only=True):
    id: UUID
    project_id: UUID
    name: str
    description: str | None
    thumbnail_url: str | None
    notes: str | None
    tags: list[str]
    dataset_dir: str | None
    created_at: datetime
    updated_at: datetime
    package_count: int
    total_assets: int
    total_size_bytes: int


class Package(msgspec.Struct, kw_only=True):
    id: UUID
    subject_id: UUID
    subject_name: str
    project_id: UUID
    name: str
    source_description: str | None
    ingested_at: datetime
    file_count: int
    total_size_bytes: int
    status: str
    package_type: str
    picked_up: bool
    disk_path: str | None
    tags: list[str]
    metadata: dict[str, Any]
    linked_subjects: list[LinkedSubject]


class PackageTypeQuery(msgspec.Struct, kw_only=True):
    package_type: ProjectType | None = None


def enrich_subjects(subjects: list[Subject], urls: MediaUrls) -> list[Subject]:
    """thumbnail_url may hold a filesystem path: serve it as a media URL when a root has it."""
    for subject in subjects:
        if subject.thumbnail_url and not subject.thumbnail_url.startswith("/media/"):
            subject.thumbnail_url = urls(subject.thumbnail_url) or subject.thumbnail_url
    return subjects


class AssetRef(msgspec.Struct, kw_only=True):
    """An asset named by id and place: lookup-by-path and search hits."""

    id: UUID
    package_id: UUID
    filename: str
    file_type: str
