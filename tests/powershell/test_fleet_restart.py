"""A simulated fleet restarted (``hvlab sim stop`` then ``hvlab sim serve``) under a running
worker: same addresses and ports, a new generated password. The worker's endpoint and
credential lookups re-read ``endpoints.json``, and its session pool rebuilds the sessions it
held to the old fleet instead of reporting the new fleet's 401 as a wrong credential."""

from __future__ import annotations

from pathlib import Path

from hvlab.powershell.command import Command, Pipeline
from hvlab.powershell.endpoints import LAB_FILE_VARIABLE, LAB_SIM_VARIABLE, WorkerLab
from hvlab.powershell.session import SessionPool
from hvlab.spec import LabSpec
from simulator.fleet import Fleet
from tests.runtime.procs import listen_port
from tests.sim.conftest import SEED

PROBE = Pipeline.one(Command.of("Get-CimInstance", ClassName="Win32_ComputerSystem"))


def _fleet(spec: LabSpec, home: Path, port: int) -> Fleet:
    return Fleet(spec, home, speed=0, port=port, control=False, max_receive_wait=2.0)


def test_worker_follows_a_restarted_fleet(lab_spec: LabSpec, tmp_path: Path) -> None:
    """The pool opened to the first fleet is reused on the second (same address and port,
    new password): its 401 means the request never ran, so the pool is rebuilt once with the
    credential read again, and the call succeeds on the new fleet."""
    port = listen_port()
    lab = WorkerLab(tmp_path, {LAB_FILE_VARIABLE: str(SEED), LAB_SIM_VARIABLE: "1"})
    opened: list[str] = []
    pool = SessionPool(lab, on_open=lambda host, delta: opened.append(host) if delta > 0
                       else None)
    try:
        with _fleet(lab_spec, tmp_path, port) as first:
            assert pool.run(lab.endpoint("DC1"), PROBE).output[0]["Name"] == "DC1"
            old_password = first.secret("domain-admin")
        with _fleet(lab_spec, tmp_path, port) as second:
            assert second.secret("domain-admin") != old_password
            assert lab.endpoint("DC1").port == port
            assert pool.run(lab.endpoint("DC1"), PROBE).output[0]["Name"] == "DC1"
            # the world (and its command counters) reloads from disk: one more, not two
            assert second.state()["counters"]["DC1"]["Get-CimInstance"] == 2
        assert opened == ["DC1", "DC1"]
    finally:
        pool.close()
