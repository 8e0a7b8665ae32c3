"""`hvlab codec-server`: the remote codec protocol over real HTTP, bearer token, CORS."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToDict, ParseDict
from temporalio.api.common.v1 import Payload, Payloads

from hvlab.codec import EncryptionCodec, Keyring, new_key_line
from hvlab.settings import Settings
from starter.codec_server import CodecServer, make_server, serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
HVLAB = str(Path(sys.executable).parent / "hvlab")
TOKEN = "tok-" + os.urandom(12).hex()
UI = "http://127.0.0.1:8233"
KEYS = new_key_line("k1") + "," + new_key_line("k2")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[CodecServer]:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    settings = Settings(
        home=tmp_path,
        codec_keys=KEYS,
        codec_server_token_file=token_file,
        codec_cors_origins=f"{UI}, https://ui.example.org/",
    )
    lines: list[str] = []
    srv = make_server(settings, address="127.0.0.1:0", log=lines.append)
    serve_in_thread(srv)
    yield srv
    srv.shutdown()
    srv.server_close()
    assert all(TOKEN not in line for line in lines)  # the token is never logged


def _request(
    srv: CodecServer, method: str, path: str, body: object = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(str(host), port, timeout=10)
    data = json.dumps(body).encode() if body is not None else None
    if data is not None:
        headers.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    result = response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    conn.close()
    return result


def _auth(**extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}", "X-Namespace": "default", **extra}


def _plain() -> list[Payload]:
    return [
        Payload(metadata={"encoding": b"json/plain"}, data=b'{"vm": "win2003-1"}'),
        Payload(metadata={"encoding": b"binary/null"}),
    ]


def _body(payloads: list[Payload]) -> dict[str, object]:
    return MessageToDict(Payloads(payloads=payloads))


def _payloads(raw: bytes) -> list[Payload]:
    data = json.loads(raw)
    return list(ParseDict(data, Payloads()).payloads)


def test_unauthenticated_requests_get_401(server: CodecServer) -> None:
    """No token, a wrong token, another scheme: 401 with a Bearer challenge, nothing decoded."""
    encoded = asyncio.run(server.codec.encode(_plain()))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": f"Bearer {TOKEN}x"}):
        status, head, body = _request(server, "POST", "/decode", _body(encoded), **headers)
        assert status == 401, headers
        assert head["www-authenticate"].startswith("Bearer")
        assert b"win2003" not in body


def test_decode_of_an_encoded_payload_gives_the_original(server: CodecServer) -> None:
    """/encode output is binary/encrypted with the active key; /decode (also under a namespace
    segment, as the CLI's --codec-endpoint templating calls it) gives the original back."""
    status, _, raw = _request(server, "POST", "/encode", _body(_plain()), **_auth())
    assert status == 200, raw
    encoded = _payloads(raw)
    assert [p.metadata["encoding"] for p in encoded] == [b"binary/encrypted"] * 2
    assert {p.metadata["encryption-key-id"] for p in encoded} == {b"k2"}
    assert b"win2003" not in raw and base64.b64encode(b"json/plain") not in raw
    for path in ("/decode", "/default/decode"):
        status, head, raw = _request(server, "POST", path, _body(encoded), **_auth())
        assert status == 200 and head["content-type"] == "application/json"
        assert _payloads(raw) == _plain()


def test_decode_reads_payloads_the_worker_codec_wrote_and_passes_plain_ones(
    server: CodecServer,
) -> None:
    """Payloads encrypted by a client codec with the same keyring (any key of it) decode; plain
    payloads come back as they are; an unknown key id is a 400 naming it."""
    client_codec = EncryptionCodec(Keyring.from_text(KEYS.split(",")[0]))  # old key k1 only
    written = asyncio.run(client_codec.encode(_plain()))
    status, _, raw = _request(server, "POST", "/decode", _body(written + _plain()), **_auth())
    assert status == 200 and _payloads(raw) == _plain() + _plain()
    foreign = asyncio.run(EncryptionCodec(Keyring.from_text(new_key_line("gone"))).encode(
        _plain()))
    status, _, raw = _request(server, "POST", "/decode", _body(foreign), **_auth())
    assert status == 400 and "'gone'" in json.loads(raw)["error"]


def test_cors_only_for_configured_origins(server: CodecServer) -> None:
    """Preflight and POST carry Access-Control-Allow-* for a listed origin (credentials true,
    Authorization/Content-Type/X-Namespace allowed) and no Allow-Origin for any other."""
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type,x-namespace"}
    for origin in (UI, "https://ui.example.org"):
        status, head, _ = _request(server, "OPTIONS", "/decode", Origin=origin, **preflight)
        assert status == 204
        assert head["access-control-allow-origin"] == origin
        assert head["access-control-allow-credentials"] == "true"
        assert {h.strip() for h in head["access-control-allow-headers"].split(",")} == {
            "Authorization", "Content-Type", "X-Namespace"}
        assert "POST" in head["access-control-allow-methods"]
    status, head, _ = _request(server, "OPTIONS", "/decode", Origin="https://evil.example",
                               **preflight)
    assert "access-control-allow-origin" not in head
    status, head, _ = _request(server, "POST", "/decode", _body(_plain()), Origin=UI, **_auth())
    assert status == 200 and head["access-control-allow-origin"] == UI
    status, head, _ = _request(server, "POST", "/decode", _body(_plain()), Origin=UI)
    assert status == 401 and head["access-control-allow-origin"] == UI  # the UI sees the 401
    status, head, _ = _request(server, "POST", "/decode", _body(_plain()),
                               Origin="https://evil.example", **_auth())
    assert "access-control-allow-origin" not in head


def test_bad_requests(server: CodecServer) -> None:
    """Unknown path 404, GET on a codec path 405, a body that is not payloads 400."""
    assert _request(server, "POST", "/other", {}, **_auth())[0] == 404
    assert _request(server, "GET", "/decode")[0] == 405
    status, _, raw = _request(server, "POST", "/decode", {"payloads": "x"}, **_auth())
    assert status == 400 and "not a payloads body" in json.loads(raw)["error"]


@pytest.mark.integration
def test_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    """Without HVLAB_CODEC_SERVER_TOKEN_FILE the command refuses 0.0.0.0 (exit 2, says why);
    with no keys it names the key settings; on loopback it serves without a token."""
    env = {**os.environ, "HVLAB_HOME": str(tmp_path), "HVLAB_CODEC_KEYS": KEYS}
    result = subprocess.run([HVLAB, "codec-server", "--address", "0.0.0.0:0"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "without a bearer token" in result.stderr
    assert "HVLAB_CODEC_SERVER_TOKEN_FILE" in result.stderr
    no_keys = {k: v for k, v in env.items() if k != "HVLAB_CODEC_KEYS"}
    result = subprocess.run([HVLAB, "codec-server"], cwd=ROOT, env=no_keys,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "HVLAB_CODEC_KEYS_FILE" in result.stderr
    srv = make_server(Settings(home=tmp_path, codec_keys=KEYS), address="127.0.0.1:0")
    serve_in_thread(srv)
    try:
        status, _, raw = _request(srv, "POST", "/decode", _body(_plain()))
        assert status == 200 and _payloads(raw) == _plain()
    finally:
        srv.shutdown()
        srv.server_close()
    for secret in KEYS.split(","):
        assert secret.split(":")[1] not in result.stdout + result.stderr


@pytest.mark.integration
def test_keygen_prints_a_usable_line(tmp_path: Path) -> None:
    """`hvlab codec keygen --id k9` prints one keyring line that loads as the active key."""
    result = subprocess.run([HVLAB, "codec", "keygen", "--id", "k9"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert Keyring.from_text(line).active_id == "k9"
    assert line != subprocess.run([HVLAB, "codec", "keygen", "--id", "k9"], cwd=ROOT,
                                  capture_output=True, text=True, timeout=60).stdout.strip()


def _form(srv: CodecServer, path: str, fields: dict[str, str], **headers: str
          ) -> tuple[int, dict[str, str], bytes]:
    import urllib.parse

    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(str(host), port, timeout=10)
    conn.request("POST", path, body=urllib.parse.urlencode(fields).encode(), headers={
        "Content-Type": "application/x-www-form-urlencoded", **headers})
    response = conn.getresponse()
    result = response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    conn.close()
    return result


def test_browser_sign_in_lets_the_web_ui_decode_with_a_cookie(server: CodecServer) -> None:
    """The Web UI sends cookies, not a fixed token (TEMPORAL_CODEC_INCLUDE_CREDENTIALS): a
    person with the token signs in at /login and gets an HttpOnly, SameSite=Strict session
    cookie without the token in it; /decode then works from the UI's origin with that cookie
    only. A wrong token, a forged or expired cookie and a signed-out browser get 401."""
    status, _, page = _request(server, "GET", "/login")
    assert status == 200 and b'name="token"' in page
    status, head, _ = _form(server, "/login", {"token": "wrong"})
    assert status == 401 and "set-cookie" not in head
    status, head, _ = _form(server, "/login", {"token": TOKEN})
    cookie = head["set-cookie"]
    assert status == 200 and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert TOKEN not in cookie and "Secure" not in cookie  # plain HTTP here
    session = cookie.split(";", 1)[0]
    _, encoded_raw = _request(server, "POST", "/encode", _body(_plain()), **_auth())[::2]
    encoded = _body(_payloads(encoded_raw))
    status, head, raw = _request(server, "POST", "/decode", encoded, Cookie=session,
                                 Origin=UI, **{"X-Namespace": "default"})
    assert status == 200 and _payloads(raw) == _plain()
    assert head["access-control-allow-origin"] == UI
    assert head["access-control-allow-credentials"] == "true"
    expiry, mac = session.split("=", 1)[1].split(".")
    forged = f"hvlab_codec_session={int(expiry) + 3600}.{mac}"
    assert _request(server, "POST", "/decode", encoded, Cookie=forged)[0] == 401
    expired = server.new_session(now=0)
    assert not server.session_valid(expired)
    assert _request(server, "POST", "/decode", encoded,
                    Cookie=f"hvlab_codec_session={expired}")[0] == 401
    status, head, _ = _form(server, "/logout", {}, Cookie=session)
    assert status == 200 and "Max-Age=0" in head["set-cookie"]
    behind_tls = _form(server, "/login", {"token": TOKEN}, **{"X-Forwarded-Proto": "https"})
    assert "; Secure" in behind_tls[1]["set-cookie"]
