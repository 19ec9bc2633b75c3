"""The API's JSON parser: DRF's, refusing deep nesting before ``json`` recurses into it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json

from pksweb import nesting


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with a depth limit (``pksweb.nesting.MAX_DEPTH``).

    ``json`` recurses once per level and raises ``RecursionError`` (an API 500) on a body
    of a few thousand ``[``. The body is measured first, without recursion; one nested
    too deep raises ``nesting.TooDeep``, which the API's exception handler answers with a
    400 saying how deep it was. The body's size is already bounded: DRF reads it through
    Django's ``request.body`` (``DATA_UPLOAD_MAX_MEMORY_SIZE``).
    """

    def parse(self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        encoding = parsers.get_encoding(parser_context or {})  # type: ignore[attr-defined]  # missing from the stubs
        try:
            text = stream.read().decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        nesting.check_json(text, what="JSON body")
        try:
            data = json.loads(text, parse_constant=json.strict_constant if self.strict else None)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        try:  # a "\ud800" escape parses into a lone surrogate, which no database column, log line or page can hold
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ParseError("JSON parse error - the body holds a lone surrogate escape (such as \\ud800), which is "
                             "not text: send valid Unicode.") from None
        return data
