"""Types and helpers shared by the catalog handlers (ids, bulk deletes, LIKE patterns)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

import msgspec

ProjectType = Literal["atman", "vfx"]
PackageStatus = Literal["ingested", "processing", "ready", "error"]
FileType = Literal["video", "image", "audio", "other"]
ReviewStatus = Literal["unreviewed", "approved", "rejected", "flagged"]

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
ShortText = Annotated[str, msgspec.Meta(max_length=255)]
Tags = list[Annotated[str, msgspec.Meta(max_length=255)]]
MAX_BULK_IDS = 10_000


class IdList(msgspec.Struct, forbid_unknown_fields=True):
    """Body of every bulk-delete: `{"ids": [...]}`."""

    ids: Annotated[list[UUID], msgspec.Meta(max_length=MAX_BULK_IDS)]


class Deleted(msgspec.Struct):
    deleted: int


class LinkedSubject(msgspec.Struct):
    id: UUID
    name: str


def contains_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere; the user's `%`, `_` and `\\` match literally.

    The SQL side applies search_key() (lower + unaccent) to it, which leaves these untouched.
    """
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def unique_ids(ids: list[UUID]) -> list[UUID]:
    return list(dict.fromkeys(ids))
