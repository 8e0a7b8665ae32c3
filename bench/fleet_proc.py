"""A simulated fleet of N lab copies in one process, driven over stdin/stdout (bench only).

Every copy is a :class:`simulator.fleet.Fleet` with its own world (``<root>/copies/<lab>``);
copy ``k`` serves its hosts on 127.0.34.(3k+1+i) with ephemeral ports (no clash with
``hvlab sim serve``, which uses 127.0.0.10+ and port 5985). All copies share one generated
password, and their endpoints are merged into ``$HVLAB_HOME/sim/endpoints.json`` (host names
are distinct per copy, see :func:`bench.common.lab_copy`).

Protocol: one JSON command per line on stdin, one JSON answer per line on stdout::

    {"op": "state"}            -> {"winrm": {host: {...}}, "commands": {host: {...}}, ...}
    {"op": "speed", "speed": 2}  -> {"ok": true}
    {"op": "stop"}             -> {"ok": true} and exit

Usage: python bench/fleet_proc.py HOME SPEED LABFILE [LABFILE ...]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hvlab.specfile import load_lab
from simulator.faults import install
from simulator.fleet import Fleet, _write_private
from simulator.winrm.faults import FaultHooks

PASSWORD = "Bench-Fleet-P@ss1"


class BenchFleet(Fleet):
    """A Fleet whose hosts listen on 127.0.34.x with ephemeral ports."""

    def __init__(self, *args: Any, base: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.base = base

    def start(self) -> BenchFleet:
        for index, host in enumerate(self.spec.hosts):
            address = f"127.0.34.{self.base + index}"
            hooks = FaultHooks()
            install(hooks, self.plan, host.name)
            server = self._serve(address, host.name, hooks)
            self.servers[host.name], self.hooks[host.name] = server, hooks
            username, password = self.access(host.name)
            self.endpoints[host.name] = {
                "address": address, "port": server.port, "scheme": "http", "auth": "ntlm",
                "username": username, "password": password,
            }
        return self


def state(fleets: list[BenchFleet]) -> dict[str, Any]:
    winrm: dict[str, Any] = {}
    commands: dict[str, Any] = {}
    for fleet in fleets:
        for name, server in fleet.servers.items():
            requests = server.request_counts
            winrm[name] = {
                "lab": fleet.spec.lab,
                "shells_created": requests.get("Create", 0),
                "shells_open": server.open_shells(),
                "connections": server.connections_accepted,
                "requests": requests,
                "requests_total": sum(requests.values()),
            }
        with fleet.sim.lock:
            for host, counts in fleet.sim.world.counters.items():
                commands[host] = dict(counts)
    return {"winrm": winrm, "commands": commands}


def main() -> int:
    home, speed, files = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
    fleets: list[BenchFleet] = []
    endpoints: dict[str, Any] = {}
    generated: dict[str, str] = {}  # every reference: PASSWORD, in every copy
    for k, file in enumerate(files):
        spec = load_lab(file)
        fleet = BenchFleet(spec, home / "copies" / spec.lab, speed=speed, fresh=True,
                           port=0, control=False, password=PASSWORD, base=3 * k + 1)
        fleets.append(fleet.start())
        endpoints.update(fleet.endpoints)
        generated.update(fleet.generated)
    _write_private(home / "sim" / "endpoints.json", {"hosts": endpoints, "secrets": generated})
    out = sys.stdout
    out.write(json.dumps({"ready": True, "hosts": len(endpoints)}) + "\n")
    out.flush()
    for line in sys.stdin:
        command = json.loads(line)
        op = command.get("op")
        if op == "state":
            answer: dict[str, Any] = state(fleets)
        elif op == "speed":
            for fleet in fleets:
                fleet.sim.clock.speed = float(command["speed"])
            answer = {"ok": True}
        elif op == "stop":
            break
        else:
            answer = {"error": f"unknown op {op!r}"}
        out.write(json.dumps(answer) + "\n")
        out.flush()
    for fleet in fleets:
        fleet.stop()
    out.write(json.dumps({"ok": True}) + "\n")
    out.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
