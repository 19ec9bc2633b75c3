"""Pages of API lists: ``?limit=`` and ``?offset=`` within what a database can count."""

from __future__ import annotations

from typing import Any

from rest_framework.pagination import LimitOffsetPagination

MAX_LIMIT = 500
MAX_OFFSET = 2**62  # past every row; beyond a bigint, SQLite and PostgreSQL refuse the query


class Pages(LimitOffsetPagination):
    """Django REST framework's limit/offset pages, with a limit cut to ``MAX_LIMIT`` (as any larger one
    would be a 500 once past a bigint) and an offset cut to ``MAX_OFFSET`` (an empty page)."""

    max_limit = MAX_LIMIT

    def get_offset(self, request: Any) -> int:
        return min(super().get_offset(request), MAX_OFFSET)
