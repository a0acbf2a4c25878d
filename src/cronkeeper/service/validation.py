"""Turning request bodies into values, and pydantic errors into FieldErrors."""

from __future__ import annotations

import json
import re

from pydantic import ValidationError

from cronkeeper.errors import FieldError, MalformedBody


def load_body(body: object) -> object:
    """Decode a raw request body (bytes/str) as JSON; InvalidInput (field `body`) if it is not."""
    if not isinstance(body, bytes | str):
        return body
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedBody(FieldError("body", f"is not valid JSON ({error})")) from None
    except RecursionError:
        value = None  # deeper than the parser goes: refused below like any too-deep body
    else:
        if _depth_within(value, MAX_DEPTH):
            return value
    raise MalformedBody(FieldError("body", f"nests deeper than {MAX_DEPTH} levels"))


#: JSON nesting allowed in a request body (job bodies need a handful of levels).
MAX_DEPTH = 32


def _depth_within(value: object, limit: int) -> bool:
    """True when no array/object inside `value` is nested deeper than `limit` (iterative)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return False
                stack.append((child, depth + 1))
    return True


def field_errors(error: ValidationError, prefix: str = "") -> list[FieldError]:
    """Pydantic errors as FieldErrors with dotted paths (`retry.backoff`, `tags[2]`)."""
    result = []
    for item in error.errors(include_url=False):
        path = prefix
        for part in item["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            elif not _is_union_tag(str(part)):
                path = f"{path}.{part}" if path else str(part)
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        result.append(FieldError(path or "body", message))
    return result


def _is_union_tag(part: str) -> bool:
    """Pydantic puts union member names (`list[str]`, `constrained-str`,
    `function-after[...]`) in error paths; they are not fields."""
    return bool(_UNION_TAG.search(part)) or part in ("str", "int", "float", "list", "dict")


_UNION_TAG = re.compile(r"[\[\]]|^(constrained|function|json|lax|tagged|nullable|default)-")
