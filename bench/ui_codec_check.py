"""Browser check: the Temporal Web UI decodes hvlab's encrypted payloads through
``hvlab codec-server`` for a signed-in browser, and for no other.

``make ui-check`` (needs Chromium: ``apt-get install chromium``; not part of ``make test``,
which must not depend on a browser). What it does, all on 127.0.0.1 ports 24300-24305 under a
private ``HVLAB_HOME``:

1. starts ``hvlab dev --detach`` with the payload codec on (a fresh key), ``hvlab codec-server``
   with a bearer token and CORS for the UI's origin, and runs a DoctorWorkflow through hvlab's
   client whose input carries a random nonce, stored encrypted in Temporal;
2. drives headless Chromium over the DevTools pipe with a fresh profile, whose UI codec
   settings (the per-browser settings a person sets in the UI) point at the codec server with
   cross-origin credentials on:

   - not signed in: the workflow page must not show the nonce, and the codec server must have
     refused the UI's decode requests (401);
   - signed in at the codec server's ``/login`` with the token: the same page shows the nonce;
   - signed out again: hidden again;
3. saves a screenshot of each state in ``bench/results/ui-codec-*.png`` and prints one line a
   check; exit 0 only when every check passes.

The token never reaches the UI: the browser holds only the codec server's session cookie.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
HVLAB = str(Path(sys.executable).parent / "hvlab")
TEMPORAL = str(Path(sys.executable).parent / "temporal")
BASE_PORT = 24300  # below the kernel's ephemeral range (32768-)
# The UI's per-browser codec settings (its localStorage names, UI 2.54): what the codec dialog
# stores for "use my browser setting" with "include cross-origin credentials" ticked. UI 2.54
# reads the browser's endpoint and credentials flag only with the override set.
UI_CODEC_SETTINGS = {"endpoint": "{codec}", "includeCredentials": True, "passAccessToken": False,
                     "overrideRemoteCodecConfiguration": True}


class DevTools:
    """Chromium driven through ``--remote-debugging-pipe`` (fd 3 in, fd 4 out, NUL-framed
    JSON), one page attached in flat mode."""

    def __init__(self, chromium: str, profile: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # fds the child moves to 3 and 4; kept clear of 0-4 so the moves cannot clobber
        child_in = _high_fd(to_browser_r)
        child_out = _high_fd(from_browser_w)

        def wire() -> None:
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        self.proc = subprocess.Popen(
            [chromium, "--headless=new", "--remote-debugging-pipe", "--no-sandbox",
             "--disable-gpu", "--no-first-run", "--no-default-browser-check",
             f"--user-data-dir={profile}", "--window-size=1400,1800", "about:blank"],
            pass_fds=(3, 4), preexec_fn=wire, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for fd in (to_browser_r, from_browser_w, child_in, child_out):
            os.close(fd)
        self._next = 0
        self._answers: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t["targetId"] for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page, flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._from_browser, 65536):
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "id" in message:
                    with self._cond:
                        self._answers[message["id"]] = message
                        self._cond.notify_all()

    def call(self, method: str, session: bool = False, timeout: float = 30,
             **params: Any) -> dict[str, Any]:  # fmt: skip
        """Send one command and wait for its answer (raises on a DevTools error)."""
        with self._cond:
            self._next += 1
            ident = self._next
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        with self._cond:
            if not self._cond.wait_for(lambda: ident in self._answers, timeout):
                raise TimeoutError(f"no answer to {method} within {timeout:g} s")
            answer = self._answers.pop(ident)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    def go(self, url: str) -> None:
        self.call("Page.navigate", session=True, url=url)
        self.wait_for("document.readyState === 'complete'", 30, f"{url} to load")

    def js(self, expression: str) -> Any:
        answer = self.call("Runtime.evaluate", session=True, expression=expression,
                           returnByValue=True, awaitPromise=True)  # fmt: skip
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression[:60]}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, timeout: float, what: str) -> bool:
        """Poll ``expression`` in the page until truthy; False after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):
                if self.js(expression):
                    return True
            time.sleep(0.25)
        return False

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("Browser.close", timeout=5)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)


def _high_fd(fd: int) -> int:
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_DUPFD, 10)


class Stack:
    """A private dev stack with the codec on and a codec server beside it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.grpc, self.ui, self.http, self.metrics, self.worker_metrics, self.codec = (
            BASE_PORT + i for i in range(6))
        self.token = secrets.token_urlsafe(24)
        keys = subprocess.run([HVLAB, "codec", "keygen", "--id", "ui-check"], check=True,
                              capture_output=True, text=True).stdout  # fmt: skip
        (home / "codec.keys").write_text(keys)
        (home / "codec.token").write_text(self.token + "\n")
        for name in ("codec.keys", "codec.token"):
            (home / name).chmod(0o600)
        self.codec_log = home / "codec-server.log"
        self.codec_proc: subprocess.Popen[bytes] | None = None

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui}"

    @property
    def codec_url(self) -> str:
        return f"http://127.0.0.1:{self.codec}"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HVLAB_")}
        env.update(
            HVLAB_HOME=str(self.home),
            HVLAB_TEMPORAL_ADDRESS=f"127.0.0.1:{self.grpc}",
            HVLAB_DEV_HTTP_PORT=str(self.http),
            HVLAB_DEV_METRICS_PORT=str(self.metrics),
            HVLAB_METRICS_ADDRESS=f"127.0.0.1:{self.worker_metrics}",
            HVLAB_CODEC_ENABLED="true",
            HVLAB_CODEC_KEYS_FILE=str(self.home / "codec.keys"),
            HVLAB_CODEC_SERVER_ADDRESS=f"127.0.0.1:{self.codec}",
            HVLAB_CODEC_SERVER_TOKEN_FILE=str(self.home / "codec.token"),
            HVLAB_CODEC_CORS_ORIGINS=self.ui_url,
            HVLAB_LOG_FORMAT="json",
        )
        return env

    def hvlab(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([HVLAB, *args], env=self.env, capture_output=True, text=True,
                              timeout=120)  # fmt: skip

    def start(self) -> None:
        result = self.hvlab("dev", "--detach", "--port", str(self.grpc), "--ui-port", str(self.ui))
        if result.returncode != 0:
            raise SystemExit(f"hvlab dev failed:\n{result.stdout}{result.stderr}")
        with self.codec_log.open("wb") as out:
            self.codec_proc = subprocess.Popen([HVLAB, "codec-server"], env=self.env,
                                               stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.monotonic() + 30
        while "codec server on" not in self.codec_log.read_text(errors="replace"):
            if self.codec_proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"hvlab codec-server did not start:\n{self.codec_log.read_text()}")
            time.sleep(0.1)

    def doctor_workflow(self) -> tuple[str, str]:
        """Run DoctorWorkflow through hvlab's client (codec on) with a random nonce in its
        input and an unrelated workflow id (ids are never encrypted); the id and the nonce."""
        sys.path.insert(0, str(ROOT))
        from hvlab.settings import Settings
        from hvlab.temporal import connect
        from workflows.doctor import DoctorInput, DoctorWorkflow

        settings = Settings(home=self.home, temporal_address=f"127.0.0.1:{self.grpc}",
                            codec_enabled=True, codec_keys_file=self.home / "codec.keys")
        nonce, workflow_id = secrets.token_hex(8), f"ui-check-{secrets.token_hex(4)}"

        async def run() -> str:
            client = await connect(settings)
            result = await client.execute_workflow(
                DoctorWorkflow.run, DoctorInput(nonce=nonce), id=workflow_id,
                task_queue=settings.task_queue, execution_timeout=timedelta(seconds=60),
            )
            return result.probe.nonce

        if asyncio.run(run()) != nonce:
            raise SystemExit("DoctorWorkflow did not return its nonce")
        return workflow_id, nonce

    def stop(self) -> None:
        if self.codec_proc is not None and self.codec_proc.poll() is None:
            self.codec_proc.terminate()
            self.codec_proc.wait(15)
        self.hvlab("dev", "stop")


@contextlib.contextmanager
def private_home() -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="hvlab-ui-check-"))
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    parser.add_argument("--timeout", type=float, default=20.0,
                        help="seconds to wait for the UI to show a state")  # fmt: skip
    args = parser.parse_args()
    if not shutil.which(args.chromium):
        print("chromium not found: apt-get install chromium (or --chromium PATH)")
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    results: list[tuple[str, bool, str]] = []

    def check(name: str, ok: bool, detail: str = "") -> None:
        results.append((name, ok, detail))
        print(f"{'PASS' if ok else 'FAIL'}  {name}{': ' + detail if detail else ''}", flush=True)

    with private_home() as home:
        stack = Stack(home)
        try:
            stack.start()
            workflow_id, nonce = stack.doctor_workflow()
            page = f"{stack.ui_url}/namespaces/default/workflows/{workflow_id}"
            stored = subprocess.run(
                [TEMPORAL, "workflow", "show", "--address", f"127.0.0.1:{stack.grpc}",
                 "-w", workflow_id, "--output", "json"],
                check=True, capture_output=True, text=True).stdout  # fmt: skip
            encrypted = base64.b64encode(b"binary/encrypted").decode()  # metadata is base64
            check("stored history holds ciphertext, not the nonce",
                  nonce not in stored and encrypted in stored)
            browser = DevTools(args.chromium, home / "profile")
            try:
                run_browser(browser, stack, page, nonce, args.timeout, check)
            finally:
                browser.close()
        finally:
            stack.stop()
    failed = [name for name, ok, _ in results if not ok]
    print(f"{len(results) - len(failed)}/{len(results)} checks passed")
    return 1 if failed else 0


def run_browser(browser: DevTools, stack: Stack, page: str, nonce: str, timeout: float,
                check: Callable[..., None]) -> None:  # fmt: skip
    shows_nonce = f"document.body && document.body.innerText.includes({json.dumps(nonce)})"
    browser.go(stack.ui_url)
    for key, value in UI_CODEC_SETTINGS.items():
        value = stack.codec_url if value == "{codec}" else value
        browser.js(f"localStorage.setItem({json.dumps(key)}, {json.dumps(json.dumps(value))})")

    refusals_before = _refusals(stack)
    browser.go(page)
    loaded = browser.wait_for(f"document.body.innerText.includes({json.dumps('DoctorWorkflow')})",
                              timeout, "the workflow page")  # fmt: skip
    browser.wait_for("false", 3, "the decode attempt to settle")  # let the UI try the codec
    browser.screenshot(RESULTS / "ui-codec-signed-out.png")
    check("workflow page loads", loaded, page)
    check("not signed in: the nonce stays hidden", not browser.js(shows_nonce))
    check("not signed in: the codec server refused the UI (401)",
          _refusals(stack) > refusals_before, f"{_refusals(stack) - refusals_before} refusals")

    browser.go(f"{stack.codec_url}/login")
    browser.js(f"document.querySelector('input[type=password]').value = "
               f"{json.dumps(stack.token)}; document.querySelector('form').submit()")
    signed = browser.wait_for("document.body.innerText.includes('Signed in')", timeout, "sign-in")
    check("sign-in at the codec server sets its session cookie", signed)
    browser.go(page)
    shown = browser.wait_for(shows_nonce, timeout, "the decoded input")
    browser.screenshot(RESULTS / "ui-codec-signed-in.png")
    check("signed in: the UI shows the decoded input", shown, f"nonce {nonce}")
    check("the token never reached the UI's storage",
          stack.token not in str(browser.js("JSON.stringify(localStorage)")))

    browser.go(f"{stack.codec_url}/login")
    browser.js("document.querySelectorAll('form')[1].submit()")
    browser.wait_for("document.body.innerText.includes('Signed out')", timeout, "sign-out")
    browser.go(page)
    browser.wait_for("false", 3, "the decode attempt to settle")
    check("signed out: hidden again", not browser.js(shows_nonce))


def _refusals(stack: Stack) -> int:
    """Decode requests the codec server answered 401 so far (its request log lines)."""
    return sum(1 for line in stack.codec_log.read_text(errors="replace").splitlines()
               if "/decode" in line and '" 401 ' in line)  # fmt: skip


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # a temporalio Client alive at interpreter exit can crash it (139/134)
