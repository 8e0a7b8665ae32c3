"""``hvlab codec keygen`` and ``hvlab codec-server``: keys, and the remote codec server the Web
UI and ``temporal --codec-endpoint`` decode payloads with (:mod:`starter.codec_server`)."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Annotated

import typer

from hvlab.codec import KeyringError, new_key_line
from hvlab.settings import get_settings
from starter.codec_server import make_server, serve_in_thread
from starter.console import UsageProblem, out

codec_app = typer.Typer(help="Payload encryption keys (AES-256-GCM).", no_args_is_help=True,
                        rich_markup_mode=None)


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def codec_server(
    address: Annotated[
        str | None,
        typer.Option(help="host:port to listen on [default: HVLAB_CODEC_SERVER_ADDRESS]"),
    ] = None,
) -> None:
    """Serve Temporal's remote codec protocol (/encode, /decode) for the Web UI and CLI."""
    settings = get_settings()
    try:
        server = make_server(settings, address=address, log=_stderr)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None
    except OSError as exc:
        raise UsageProblem(
            f"cannot listen on {address or settings.codec_server_address}: {exc.strerror or exc}"
        ) from None
    keyring = server.codec.keyring
    origins = ", ".join(sorted(server.origins)) or "none"
    auth = "bearer token required" if server.token else "NO TOKEN (loopback only)"
    out.print(
        f"codec server on {server.url}  keys: {', '.join(keyring.ids)} "
        f"(active {keyring.active_id})  auth: {auth}  CORS origins: {origins}",
        markup=False,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    serve_in_thread(server)
    stop.wait()
    server.shutdown()
    server.server_close()


@codec_app.command("keygen")
def keygen(
    key_id: Annotated[str | None, typer.Option("--id", help="key id [default: random]")] = None,
) -> None:
    """Print a new `keyid:base64` keyring line (append it to HVLAB_CODEC_KEYS_FILE to rotate)."""
    try:
        line = new_key_line(key_id)
    except KeyringError as exc:
        raise UsageProblem(str(exc)) from None
    sys.stdout.write(line + "\n")
