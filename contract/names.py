"""The collection-name rule: the app refuses other names, so the Lambdas refuse them before any GPU
start (refusing up front costs nothing; refusing after a start costs minutes)."""

from __future__ import annotations

import re
from typing import Final

COLLECTION_PATTERN: Final = r"^[A-Za-z0-9._-]{1,64}$"
COLLECTION_RULE: Final = "1 to 64 of A-Za-z0-9 . _ -"
DEFAULT_COLLECTION: Final = "default"
_COLLECTION: Final = re.compile(COLLECTION_PATTERN)


def is_collection_name(name: str) -> bool:
    # fullmatch: `$` alone would also accept a name ending in a newline.
    return _COLLECTION.fullmatch(name) is not None
