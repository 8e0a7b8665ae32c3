"""Secret scan of a full demo run (issue 6): no credential value in any workflow history, the
worker's logs or its metrics page; and, with the codec on, every payload in every stored
history is ciphertext while `hvlab` and the worker still read them.

The demo runs the seed scenario against the simulated fleet. The ``env:`` variables the lab
file references are set to distinctive random values; the fleet takes each account's password
from them (as a worker for real hosts would read them), so they are the values the worker
actually sends over WinRM (NTLM logons as the local and the domain Administrator, the domain
join's PSCredential, the Telnet user's password) and what is scanned for, with any password the
fleet generated (``$HVLAB_HOME/sim/endpoints.json``; none here). The fleet runs at ``--speed 0``: what is scanned does not depend
on simulated time (tests/cli/test_demo.py runs the demo at its default speed).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import MessageToJson
from temporalio.api.history.v1 import History
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from hvlab.codec import ENCODING, new_key_line
from tests.runtime.procs import processes_mentioning
from tests.security.scan import codec_covered, history_payloads, leaks

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HVLAB = str(Path(sys.executable).parent / "hvlab")
LAB = "examples/classroom-lab.yaml"
CREDENTIAL_VARIABLES = (
    "HVLAB_DOMAIN_ADMIN_PASSWORD",
    "HVLAB_LOCAL_ADMIN_PASSWORD",
    "HVLAB_GUEST_ADMIN_PASSWORD",
    "HVLAB_TELUSER_PASSWORD",
)


def _env(home: Path, base_port: int, codec: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HVLAB_")}
    env.update(
        HVLAB_HOME=str(home), HVLAB_DEV_PORT=str(base_port),
        HVLAB_TEMPORAL_ADDRESS=f"127.0.0.1:{base_port}", HVLAB_UI_PORT=str(base_port + 1),
        HVLAB_DEV_HTTP_PORT=str(base_port + 2), HVLAB_DEV_METRICS_PORT=str(base_port + 3),
        HVLAB_METRICS_ADDRESS=f"127.0.0.1:{base_port + 4}",
    )
    for name in CREDENTIAL_VARIABLES:
        env[name] = f"Pw-{name[6:10]}-{secrets.token_urlsafe(18)}!"
    if codec:
        keys = home.parent / "codec.keys"
        keys.write_text(f"# scan keys\n{new_key_line('old')}\n{new_key_line('cur')}\n")
        env.update(HVLAB_CODEC_ENABLED="true", HVLAB_CODEC_KEYS_FILE=str(keys))
    return env


def _hvlab(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HVLAB, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


async def _dump_histories(address: str) -> tuple[list[History], str]:
    """Every workflow's history (plus every schedule's description) through the Temporal API,
    with a client WITHOUT the codec; and all of it as JSON, as `temporal workflow show
    --output json` prints it."""
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    histories: list[History] = []
    texts: list[str] = []
    async for execution in client.list_workflows():
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        history = History(events=(await handle.fetch_history()).events)
        histories.append(history)
        texts.append(MessageToJson(history))
    async for listed in await client.list_schedules():
        described = await client.get_schedule_handle(listed.id).describe()
        texts.append(MessageToJson(described.raw_description))
    return histories, "\n".join(texts)


def _dump(address: str) -> tuple[list[History], str]:
    return asyncio.run(_dump_histories(address))


def _logs(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*.log"))}


def _metrics(env: dict[str, str]) -> str:
    url = f"http://{env['HVLAB_METRICS_ADDRESS']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text: str = response.read().decode()
    return text


def _fleet_passwords(home: Path) -> dict[str, str]:
    """The passwords the fleet generated (for references without a value) and wrote out."""
    data: dict[str, Any] = json.loads((home / "sim" / "endpoints.json").read_text())
    found = {f"fleet password for {ref}": pw for ref, pw in data.get("secrets", {}).items()}
    found.update({f"fleet password of {host}": entry["password"]
                  for host, entry in data["hosts"].items() if "password" in entry})
    return found


@pytest.mark.parametrize(("codec", "base_port"), [(False, 31233), (True, 31333)],
                         ids=["codec-off", "codec-on"])
def test_demo_leaks_no_credential(tmp_path: Path, codec: bool, base_port: int) -> None:
    """A full `hvlab demo --keep` run: every workflow history and schedule (dumped through the
    Temporal API without the codec), every log under HVLAB_HOME, the worker's /metrics page and
    the demo's own output hold no credential value (raw, base64 at any alignment, UTF-16LE or
    its base64). Control: the scanner does find the lab's VM names in the dump.

    Codec on: every payload the codec covers, in every history, is binary/encrypted, yet the
    demo (which reads typed workflow results) passed, `hvlab doctor` passes, and the same
    doctor without the keys cannot read the worker's answer."""
    home = tmp_path / "home"
    env = _env(home, base_port, codec)
    try:
        demo = _hvlab(env, "demo", LAB, "--json", "--keep", "--speed", "0", timeout=600)
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        steps = json.loads(demo.stdout)["steps"]
        assert all(step["ok"] for step in steps), steps
        values = {name: env[name] for name in CREDENTIAL_VARIABLES}
        values.update(_fleet_passwords(home))
        if codec:
            key_file = Path(env["HVLAB_CODEC_KEYS_FILE"]).read_text()
            for n, line in enumerate(key_file.splitlines()[1:]):
                values[f"codec key {n}"] = line.split(":", 1)[1]

        histories, dump = _dump(env["HVLAB_TEMPORAL_ADDRESS"])
        assert len(histories) >= 10, len(histories)  # build + its children + the scenario
        logs = _logs(home)
        assert logs.get("dev/worker.log")
        metrics = _metrics(env)
        assert "hvlab_step_duration_seconds" in metrics
        places: dict[str, bytes | str] = {"histories": dump, "metrics": metrics,
                                          "demo output": demo.stdout + demo.stderr, **logs}
        found = {where: hits for where, text in places.items() if (hits := leaks(text, values))}
        assert found == {}, found

        everything = [(path, p) for h in histories for path, p in history_payloads(h)]
        patches = [json.loads(p.data) for path, p in everything if path.startswith("patch-marker")]
        assert all(set(patch) == {"id", "deprecated"} for patch in patches), patches
        covered = [p for path, p in everything if codec_covered(path)]
        assert len(covered) > 100
        encrypted = [p for p in covered if p.metadata.get("encoding") == ENCODING]
        if codec:
            plain = sorted({path for path, p in everything
                            if codec_covered(path) and p.metadata.get("encoding") != ENCODING})
            assert plain == []
            assert {p.metadata["encryption-key-id"] for p in encrypted} == {b"cur"}
            doctor = _hvlab(env, "doctor")
            assert doctor.returncode == 0, doctor.stdout + doctor.stderr
            keyless = {k: v for k, v in env.items() if not k.startswith("HVLAB_CODEC_")}
            blind = _hvlab(keyless, "doctor")
            assert blind.returncode == 1
            assert "Unknown payload encoding binary/encrypted" in blind.stderr
        else:
            assert encrypted == []
            assert leaks(dump, {"vm": "win2003-1", "share": "\\\\DC1\\smb"}), "blind scanner"
    finally:
        _hvlab(env, "dev", "stop")
    assert processes_mentioning(str(home)) == []
