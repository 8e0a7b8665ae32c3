"""Helpers for the security tests: find payloads in Temporal API messages, and find secret
values in text or bytes in every form they could take (raw, base64 at any alignment, UTF-16LE).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import History

# Payload fields the SDK never passes through the codec: search attributes must stay readable
# for the server's visibility index, headers only with HeaderCodecBehavior.CODEC.
UNENCODED_FIELDS = frozenset({"search_attributes", "indexed_fields", "header", "patch-marker"})


def payloads(message: Message, path: str = "") -> Iterator[tuple[str, Payload]]:
    """Every ``Payload`` inside ``message`` with its field path (maps and lists included)."""
    if isinstance(message, Payload):
        yield path, message
        return
    for field, value in message.ListFields():
        here = f"{path}.{field.name}" if path else field.name
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            entries = value.values() if hasattr(value, "values") else []
            for item in entries:
                if isinstance(item, Message):
                    yield from payloads(item, here)
        elif field.is_repeated:
            for item in value:
                yield from payloads(item, here)
        else:
            yield from payloads(value, here)


def codec_covered(path: str) -> bool:
    """Whether the SDK passes a payload at ``path`` through the payload codec."""
    return not UNENCODED_FIELDS.intersection(path.split("."))


PATCH_MARKER = "core_patch"


def history_payloads(history: History) -> Iterator[tuple[str, Payload]]:
    """Every payload of ``history``; those of ``workflow.patched`` markers (written by the SDK
    core, which has no codec: they hold the patch id, no user data) under ``patch-marker``."""
    for number, event in enumerate(history.events):
        attrs = event.marker_recorded_event_attributes
        if event.HasField("marker_recorded_event_attributes") and attrs.marker_name == PATCH_MARKER:
            yield from payloads(attrs, "patch-marker")
            continue
        yield from payloads(event, f"events[{number}]")


def _b64_variants(raw: bytes) -> Iterator[bytes]:
    """Base64 text that any base64 encoding containing ``raw`` must contain (3 alignments,
    standard and URL-safe alphabets): the characters that depend on ``raw`` alone."""
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        first = -(-shift // 3) * 4  # first 4-char group made only of raw's bytes
        last = (shift + len(raw)) // 3 * 4
        core = encoded[first:last]
        if len(core) >= 8:
            yield core
            yield core.replace(b"+", b"-").replace(b"/", b"_")


def forms(value: str) -> set[bytes]:
    """``value`` as it could appear: UTF-8, UTF-16LE, and the base64 of each, JSON-escaped."""
    found: set[bytes] = set()
    for raw in (value.encode(), value.encode("utf-16-le")):
        found.add(raw)
        found.update(_b64_variants(raw))
    return found


def leaks(haystack: bytes | str, secrets: Mapping[str, str]) -> list[str]:
    """``name (form)`` for every secret found in ``haystack``; names, never the values."""
    data = haystack.encode() if isinstance(haystack, str) else haystack
    hits = []
    for name, secret in secrets.items():
        for number, form in enumerate(sorted(forms(secret))):
            if form in data:
                hits.append(f"{name} (form {number} of {len(forms(secret))})")
    return hits
