"""The dispatcher's job messages: size and depth checks, decoding, and the typed TriggerMessage, with
validation that explains itself. The controller's request is in controller_request.py, the Batch
state-change event the monitor reads in lambdas/monitor/events.py: each function imports only its
own schemas (issue 18 goal 4)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from lambdas.common.controller_request import Metadata
from lambdas.common.validation import InvalidMessageError, optional_str, reject_unknown, require_mapping

# SNS allows 256 KiB; a genuine job message is a few hundred bytes, so anything near the limit is
# a mistake (a whole file pasted into a message) and is refused before it is parsed.
MAX_MESSAGE_BYTES: Final = 64 * 1024
# A job message is four levels deep; far deeper JSON is hostile, and Python's parser would answer
# it with a RecursionError (a crash, retried as if transient) rather than a reason.
MAX_JSON_DEPTH: Final = 32
# The tokens depth depends on: an escape (skipped, so an escaped quote ends no string), a quote, a bracket.
_JSON_DEPTH_TOKEN = re.compile(r'\\.|["\[\]{}]')


def utf8_size(text: str) -> int:
    """Bytes of `text` in UTF-8; an unpaired surrogate counts as the three bytes it would take."""
    return len(text.encode("utf-8", "surrogatepass"))


def too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text nests arrays/objects more than `limit` levels, found without recursion."""
    depth, in_string = 0, False
    for match in _JSON_DEPTH_TOKEN.finditer(text):  # linear: one pass, no backtracking
        symbol = match.group()
        if symbol == '"':
            in_string = not in_string
        elif not in_string and len(symbol) == 1:
            depth += 1 if symbol in "[{" else -1
            if depth > limit:
                return True
    return False


def cut_to_depth(value: Any, limit: int = MAX_JSON_DEPTH + 1) -> Any:
    """`value` with everything below `limit` levels replaced by "...": a deep event made printable."""
    if limit <= 0:
        return "..."
    if isinstance(value, Mapping):
        return {str(key): cut_to_depth(item, limit - 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [cut_to_depth(item, limit - 1) for item in value]
    return value


def decode_message(raw: str) -> Any:
    """The message's JSON value, or InvalidMessageError saying why there is none (size, depth, syntax)."""
    size = utf8_size(raw)
    if size > MAX_MESSAGE_BYTES:
        raise InvalidMessageError(
            f"message is {size} bytes, more than the {MAX_MESSAGE_BYTES} allowed", "MessageTooLarge"
        )
    if too_deep(raw):
        raise InvalidMessageError(
            f"message is nested more than {MAX_JSON_DEPTH} levels deep (arrays/objects)", "InvalidJSON"
        )
    try:
        return json.loads(raw)
    except RecursionError:  # unreachable after too_deep(); kept so no input can crash the parser
        raise InvalidMessageError("message is nested too deeply to parse", "InvalidJSON") from None
    except ValueError as exc:
        raise InvalidMessageError(f"message is not JSON: {exc}", "InvalidJSON") from None


class TriggerMessage(NamedTuple):
    """`{"trigger_type": ..., "data": {...}, "metadata": {...}, "idempotency_key": ...}`."""

    trigger_type: str
    data: Mapping[str, Any]
    metadata: Metadata
    idempotency_key: str | None

    @classmethod
    def parse(cls, raw: str) -> TriggerMessage:
        message = require_mapping(decode_message(raw), "message")
        reject_unknown(message, ("trigger_type", "data", "metadata", "idempotency_key"), "message")
        trigger_type = optional_str(message, "trigger_type", "message", 64)
        if trigger_type is None:
            raise InvalidMessageError("message.trigger_type is required")
        return cls(
            trigger_type=trigger_type,
            data=require_mapping(message.get("data", {}), "data"),
            metadata=Metadata.parse(message.get("metadata")),
            idempotency_key=optional_str(message, "idempotency_key", "message"),
        )

    @staticmethod
    def sender_key(raw: str) -> str | None:
        """The sender's `idempotency_key` tied to the payload (`<key>:<sha256 of the canonical JSON>`),
        if the message is decodable JSON with a usable key; else None.

        A fixed message re-sent under the same key is a new payload, so it is not taken for a
        duplicate of the one that failed; the same payload written differently still is one.
        """
        try:
            decoded = decode_message(raw)
        except InvalidMessageError:
            return None
        key = decoded.get("idempotency_key") if isinstance(decoded, dict) else None
        if not isinstance(key, str) or not 0 < len(key) <= 256:
            return None
        canonical = json.dumps(decoded, sort_keys=True, separators=(",", ":"))  # ASCII: surrogates escaped
        return f"{key}:{hashlib.sha256(canonical.encode('ascii')).hexdigest()}"
