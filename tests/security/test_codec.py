"""hvlab.codec: AES-GCM round trip, rotation, tampering, unknown keys, pass-through, keyring
parsing, and the settings that switch it on in hvlab.temporal."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter

from hvlab.codec import (
    KEY_ID_KEY,
    NONCE_SIZE,
    EncryptionCodec,
    Keyring,
    KeyringError,
    PayloadDecryptionError,
    UnknownKeyId,
    is_encrypted,
    keyring_from_settings,
    new_key_line,
)
from hvlab.settings import Settings
from hvlab.temporal import CodecUnavailable, connect, data_converter

KEY_A = new_key_line("a")
KEY_B = new_key_line("b")


def _codec(text: str) -> EncryptionCodec:
    return EncryptionCodec(Keyring.from_text(text))


def _payload(text: str = '{"password": "hunter2-plain"}') -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


def _roundtrip(codec: EncryptionCodec, payloads: list[Payload]) -> list[Payload]:
    return asyncio.run(codec.decode(payloads))


def test_round_trip_restores_the_payload_and_hides_it() -> None:
    """Encode then decode gives back the exact payload; the ciphertext carries the key id,
    a fresh nonce each time, and none of the plaintext or its metadata."""
    codec = _codec(KEY_A)
    original = [_payload(), _payload("second"), Payload()]
    encoded = asyncio.run(codec.encode(original))
    assert all(is_encrypted(p) for p in encoded)
    assert {p.metadata[KEY_ID_KEY] for p in encoded} == {b"a"}
    assert set(encoded[0].metadata) == {"encoding", KEY_ID_KEY}
    assert b"hunter2" not in encoded[0].data and b"json/plain" not in encoded[0].data
    again = asyncio.run(codec.encode(original))
    assert encoded[0].data[:NONCE_SIZE] != again[0].data[:NONCE_SIZE]
    assert _roundtrip(codec, encoded) == original


def test_rotation_old_ciphertext_still_decrypts_and_new_uses_the_new_key() -> None:
    """Appending a key: payloads from before decrypt, new ones carry the new (last) key id."""
    old = _codec(KEY_A)
    before = asyncio.run(old.encode([_payload("before")]))
    rotated = _codec(f"{KEY_A},{KEY_B}")
    assert rotated.keyring.active_id == "b" and rotated.keyring.ids == ["a", "b"]
    after = asyncio.run(rotated.encode([_payload("after")]))
    assert after[0].metadata[KEY_ID_KEY] == b"b"
    assert _roundtrip(rotated, before + after) == [_payload("before"), _payload("after")]
    with pytest.raises(UnknownKeyId):  # the old keyring cannot read the new key's payloads
        _roundtrip(old, after)


@pytest.mark.parametrize("where", ["data-first", "data-last", "nonce", "key-id"])
def test_tampering_is_detected(where: str) -> None:
    """A flipped bit anywhere, or a payload relabelled with another known key id, fails."""
    codec = _codec(f"{KEY_A},{KEY_B}")
    payload = asyncio.run(codec.encode([_payload()]))[0]
    data = bytearray(payload.data)
    if where == "data-first":
        data[NONCE_SIZE] ^= 1
    elif where == "data-last":
        data[-1] ^= 0x80
    elif where == "nonce":
        data[0] ^= 1
    payload.data = bytes(data)
    if where == "key-id":
        payload.metadata[KEY_ID_KEY] = b"a"
    with pytest.raises(PayloadDecryptionError, match="failed authentication"):
        _roundtrip(codec, [payload])
    payload.data = payload.data[:10]
    with pytest.raises(PayloadDecryptionError, match="truncated"):
        _roundtrip(codec, [payload])


def test_unknown_key_id_error_names_it() -> None:
    """Decoding with a keyring that lacks the key names the missing id and the known ones."""
    encoded = asyncio.run(_codec(new_key_line("retired-2024")).encode([_payload()]))
    with pytest.raises(UnknownKeyId) as caught:
        _roundtrip(_codec(KEY_A), encoded)
    assert caught.value.key_id == "retired-2024"
    assert "'retired-2024'" in str(caught.value) and "known: a" in str(caught.value)
    assert "HVLAB_CODEC_KEYS_FILE" in str(caught.value)


def test_unencrypted_payloads_pass_through_decode() -> None:
    """Plain payloads (history from before the codec was switched on) decode unchanged."""
    codec = _codec(KEY_A)
    plain = [_payload(), Payload(metadata={"encoding": b"binary/null"}), Payload()]
    mixed = plain + asyncio.run(codec.encode([_payload("secret")]))
    assert _roundtrip(codec, mixed) == [*plain, _payload("secret")]


def test_key_file_comments_blank_lines_and_last_key_active(tmp_path: Path) -> None:
    """A key file: comments and blank lines ignored, every key loaded, the last one active."""
    path = tmp_path / "keys"
    path.write_text(f"# hvlab keyring\n\n{KEY_A}\n   # rotated 2026-11\n{KEY_B}\n")
    keyring = Keyring.from_file(path)
    assert (keyring.ids, keyring.active_id) == (["a", "b"], "b")
    settings = Settings(home=tmp_path, codec_enabled=True, codec_keys_file=path)
    assert keyring_from_settings(settings).ids == ["a", "b"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("no-colon-here", "expected keyid:base64-of-32-bytes"),
        ("k2:", "expected keyid:base64-of-32-bytes"),
        ("k2:not base64!!", "key 'k2' is not valid base64"),
        (f"k2:{base64.b64encode(b'short').decode()}", "key 'k2' is 5 bytes; AES-256 needs 32"),
        (f"bad id:{base64.b64encode(bytes(32)).decode()}", "key id must be"),
        (KEY_A, "key id 'a' appears twice"),
    ],
    ids=["no-colon", "empty-key", "not-base64", "short-key", "bad-id", "duplicate-id"],
)
def test_bad_key_file_lines_are_named(tmp_path: Path, line: str, message: str) -> None:
    """Each malformed line is reported with the file, its line number and what is wrong,
    and never with the key material."""
    path = tmp_path / "keys"
    path.write_text(f"# keys\n{KEY_A}\n{line}\n")
    with pytest.raises(KeyringError) as caught:
        Keyring.from_file(path)
    text = str(caught.value)
    assert f"HVLAB_CODEC_KEYS_FILE {path} line 3: {message}" in text
    assert KEY_A.split(":")[1] not in text


def test_bad_env_entries_and_missing_keys_name_the_setting(tmp_path: Path) -> None:
    """The env form names its entry; empty file, no keys, both set: each names the setting."""
    with pytest.raises(KeyringError, match="HVLAB_CODEC_KEYS entry 2: expected keyid"):
        Keyring.from_text(f"{KEY_A},oops")
    empty = tmp_path / "empty"
    empty.write_text("# nothing yet\n")
    with pytest.raises(KeyringError, match=f"HVLAB_CODEC_KEYS_FILE: {empty} holds no key"):
        Keyring.from_file(empty)
    with pytest.raises(KeyringError, match="cannot read"):
        Keyring.from_file(tmp_path / "missing")
    with pytest.raises(KeyringError, match="set HVLAB_CODEC_KEYS_FILE or HVLAB_CODEC_KEYS"):
        keyring_from_settings(Settings(home=tmp_path, codec_enabled=True))
    both = Settings(home=tmp_path, codec_keys_file=empty, codec_keys=KEY_A)
    with pytest.raises(KeyringError, match="only one of"):
        keyring_from_settings(both)


def test_secrets_stay_out_of_reprs(tmp_path: Path) -> None:
    """Neither the settings nor the keyring nor the codec show key material."""
    secret = KEY_A.split(":")[1]
    settings = Settings(home=tmp_path, codec_enabled=True, codec_keys=KEY_A)
    codec = data_converter(settings).payload_codec
    for shown in (repr(settings), str(settings), repr(codec), repr(Keyring.from_text(KEY_A))):
        assert secret not in shown
    assert "codec_keys=" not in repr(settings)


def test_data_converter_off_by_default_and_codec_when_enabled(tmp_path: Path) -> None:
    """Off: the plain pydantic converter. On: the same converter plus the codec."""
    assert data_converter(Settings(home=tmp_path)) is pydantic_data_converter
    on = data_converter(Settings(home=tmp_path, codec_enabled=True, codec_keys=KEY_A))
    assert isinstance(on.payload_codec, EncryptionCodec)
    assert on.payload_converter_class is pydantic_data_converter.payload_converter_class


async def test_connect_with_codec_enabled_but_no_keys_names_the_settings(tmp_path: Path) -> None:
    """connect() fails before dialling, with a TemporalUnavailable naming the settings."""
    settings = Settings(home=tmp_path, codec_enabled=True, temporal_address="127.0.0.1:1")
    with pytest.raises(CodecUnavailable) as caught:
        await connect(settings)
    text = str(caught.value)
    assert "HVLAB_CODEC_ENABLED" in text and "HVLAB_CODEC_KEYS_FILE" in text


def test_codec_overhead_per_payload() -> None:
    """Measured: encode+decode of a 1 KiB payload costs well under a millisecond."""
    codec = _codec(KEY_A)
    payload = _payload("x" * 1024)
    rounds = 2000
    started = time.perf_counter()
    for _ in range(rounds):
        codec.decrypt(codec.encrypt(payload))
    per_payload_us = (time.perf_counter() - started) / rounds * 1e6
    size_overhead = len(codec.encrypt(payload).SerializeToString()) - len(
        payload.SerializeToString()
    )
    print(f"codec: {per_payload_us:.1f} us per 1 KiB encode+decode, +{size_overhead} bytes")
    assert per_payload_us < 1000
    assert size_overhead < 100
