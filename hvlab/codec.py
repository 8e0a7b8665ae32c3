"""AES-GCM payload codec: workflow inputs, results and heartbeat details encrypted at rest.

Each encoded payload carries metadata ``encoding: binary/encrypted`` and
``encryption-key-id: <id>``; its data is a 12-byte random nonce followed by the AES-256-GCM
ciphertext (with tag) of the serialized original ``Payload`` protobuf. The key id is also the
associated data, so a payload relabelled with another key id fails authentication.

Keys come from a keyring: ``HVLAB_CODEC_KEYS_FILE`` (one ``keyid:base64-of-32-bytes`` per
line, ``#`` comments and blank lines ignored) or ``HVLAB_CODEC_KEYS`` (the same entries,
comma-separated). The LAST key encrypts; every key decrypts. Rotate by appending a key: old
histories stay readable, new payloads use the new id. Payloads that are not encrypted pass
through :meth:`EncryptionCodec.decode` unchanged, so the codec can be switched on for a
namespace that already has plaintext histories.

Key material never appears in an error message, a log line or a ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from hvlab.settings import Settings

ENCODING = b"binary/encrypted"
ENCODING_KEY = "encoding"
KEY_ID_KEY = "encryption-key-id"
NONCE_SIZE = 12
KEY_SIZE = 32
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
FILE_SETTING = "HVLAB_CODEC_KEYS_FILE"
ENV_SETTING = "HVLAB_CODEC_KEYS"


class CodecError(Exception):
    """Base class of the codec's errors (the message never holds key material)."""


class KeyringError(CodecError):
    """The keyring is missing or malformed; the message names the setting and the line."""


class UnknownKeyId(CodecError):
    """A payload was encrypted with a key id the keyring does not hold."""

    def __init__(self, key_id: str, known: Sequence[str]) -> None:
        self.key_id = key_id
        super().__init__(
            f"payload encrypted with key id {key_id!r}, which is not in the keyring "
            f"(known: {', '.join(known) or 'none'}); add that key to {FILE_SETTING} or "
            f"{ENV_SETTING}"
        )


class PayloadDecryptionError(CodecError):
    """An encrypted payload failed authentication or is malformed."""


@dataclass(frozen=True)
class Keyring:
    """Key ids to 32-byte AES keys, in file order; the last one encrypts."""

    keys: dict[str, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyringError("the keyring holds no key")

    @property
    def active_id(self) -> str:
        """The key id new payloads are encrypted with (the last entry)."""
        return next(reversed(self.keys))

    @property
    def ids(self) -> list[str]:
        """Every key id, oldest first."""
        return list(self.keys)

    def __repr__(self) -> str:
        return f"Keyring(ids={self.ids}, active={self.active_id!r})"

    @classmethod
    def parse(cls, entries: Iterable[tuple[str, str]], empty: str = "no key given") -> Keyring:
        """Build from ``(where, text)`` entries; ``where`` names the line in errors.

        ``empty`` is the error message when no entry holds a key.
        """
        keys: dict[str, bytes] = {}
        for where, raw in entries:
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            key_id, key = _parse_entry(where, text)
            if key_id in keys:
                raise KeyringError(f"{where}: key id {key_id!r} appears twice")
            keys[key_id] = key
        if not keys:
            raise KeyringError(empty)
        return cls(keys)

    @classmethod
    def from_file(cls, path: Path) -> Keyring:
        """The keyring in ``path`` (``keyid:base64`` per line, ``#`` comments)."""
        path = path.expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc)
            raise KeyringError(f"{FILE_SETTING}: cannot read {path}: {reason}") from None
        lines = enumerate(text.splitlines(), 1)
        return cls.parse(
            ((f"{FILE_SETTING} {path} line {n}", line) for n, line in lines),
            empty=f"{FILE_SETTING}: {path} holds no key",
        )

    @classmethod
    def from_text(cls, text: str, source: str = ENV_SETTING) -> Keyring:
        """The keyring in a comma-separated ``keyid:base64,keyid:base64`` string."""
        items = enumerate(text.split(","), 1)
        return cls.parse(
            ((f"{source} entry {n}", item) for n, item in items), empty=f"{source} holds no key"
        )


def _parse_entry(where: str, text: str) -> tuple[str, bytes]:
    key_id, sep, encoded = text.partition(":")
    key_id, encoded = key_id.strip(), encoded.strip()
    if not sep or not key_id or not encoded:
        raise KeyringError(f"{where}: expected keyid:base64-of-32-bytes")
    if not KEY_ID_PATTERN.match(key_id):
        raise KeyringError(
            f"{where}: key id must be 1-64 letters, digits, '.', '_' or '-' (starting with a "
            "letter or digit)"
        )
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"{where}: key {key_id!r} is not valid base64") from None
    if len(key) != KEY_SIZE:
        raise KeyringError(f"{where}: key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_SIZE}")
    return key_id, key


def keyring_from_settings(settings: Settings) -> Keyring:
    """The keyring the settings name; :class:`KeyringError` says which setting is wrong."""
    if settings.codec_keys_file is not None and settings.codec_keys:
        raise KeyringError(f"set only one of {FILE_SETTING} and {ENV_SETTING}")
    if settings.codec_keys_file is not None:
        return Keyring.from_file(settings.codec_keys_file)
    if settings.codec_keys:
        return Keyring.from_text(settings.codec_keys)
    raise KeyringError(
        f"no keyring: set {FILE_SETTING} or {ENV_SETTING} (make a key with `hvlab codec keygen`)"
    )


def new_key_line(key_id: str | None = None) -> str:
    """A fresh ``keyid:base64`` keyring line (random 256-bit key)."""
    key_id = key_id or f"k{secrets.token_hex(4)}"
    if not KEY_ID_PATTERN.match(key_id):
        raise KeyringError(f"key id {key_id!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return f"{key_id}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


def is_encrypted(payload: Payload) -> bool:
    """Whether ``payload`` is this codec's output."""
    return payload.metadata.get(ENCODING_KEY) == ENCODING


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM :class:`PayloadCodec` over a :class:`Keyring`."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keyring.keys.items()}

    def __repr__(self) -> str:
        return f"EncryptionCodec({self.keyring!r})"

    def encrypt(self, payload: Payload) -> Payload:
        """One payload, encrypted with the active key."""
        key_id = self.keyring.active_id
        nonce = os.urandom(NONCE_SIZE)
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), key_id.encode())
        return Payload(
            metadata={ENCODING_KEY: ENCODING, KEY_ID_KEY: key_id.encode()}, data=nonce + sealed
        )

    def decrypt(self, payload: Payload) -> Payload:
        """One payload decrypted; a payload that is not encrypted is returned as it is."""
        if not is_encrypted(payload):
            return payload
        key_id = payload.metadata.get(KEY_ID_KEY, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownKeyId(key_id, self.keyring.ids)
        data = payload.data
        if len(data) < NONCE_SIZE + 16:
            raise PayloadDecryptionError(f"encrypted payload (key id {key_id!r}) is truncated")
        try:
            plain = cipher.decrypt(data[:NONCE_SIZE], data[NONCE_SIZE:], key_id.encode())
        except InvalidTag:
            raise PayloadDecryptionError(
                f"encrypted payload (key id {key_id!r}) failed authentication: it was altered "
                "or encrypted with a different key under that id"
            ) from None
        try:
            return Payload.FromString(plain)
        except DecodeError:
            raise PayloadDecryptionError(
                f"encrypted payload (key id {key_id!r}) does not hold a payload"
            ) from None

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encrypt every payload with the active key."""
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decrypt the encrypted payloads; others pass through."""
        return [self.decrypt(p) for p in payloads]


def codec_from_settings(settings: Settings) -> EncryptionCodec:
    """The codec for ``settings`` (whether or not ``codec_enabled`` is set)."""
    return EncryptionCodec(keyring_from_settings(settings))
