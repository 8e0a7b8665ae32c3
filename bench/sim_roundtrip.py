"""Round-trip latency of the simulated WinRM/PSRP listener through the real pypsrp client.

Starts one :class:`simulator.winrm.WinRMServer` (in this process, or with ``--subprocess`` in a
child process so client and server do not share the GIL), then:

1. opens one RunspacePool over NTLM with message encryption and times ``--calls`` invocations of
   a trivial command (one Command + one Receive each);
2. opens ``--pools`` pools from as many threads at once and runs ``--per-pool`` commands in each.

Prints one JSON document. Usage::

    .venv/bin/python bench/sim_roundtrip.py [--calls 200] [--pools 16] [--subprocess]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

from simulator.protocol import Invocation, PipelineContext
from simulator.winrm import WinRMServer

ADDRESS = "127.0.0.42"
USERS = {"Administrator": "Bench-P@ss1"}


class EchoHandler:
    """Answers every command with its first parameter value (or "pong")."""

    def invoke(self, invocation: Invocation, ctx: PipelineContext) -> None:
        params = invocation.statements[0][0].parameters
        ctx.output(params[0].value if params else "pong")


def start_server() -> WinRMServer:
    server = WinRMServer(ADDRESS, 0, "BENCH01", EchoHandler(), USERS)
    server.start()
    return server


def _serve_forever(port_queue: Any) -> None:
    server = start_server()
    port_queue.put(server.port)
    while True:
        time.sleep(3600)


def connect(port: int) -> WSMan:
    return WSMan(
        ADDRESS,
        port=port,
        ssl=False,
        auth="ntlm",
        username="LAB\\Administrator",
        password=USERS["Administrator"],
        no_proxy=True,
    )


def invoke(pool: RunspacePool, value: Any = None) -> list[Any]:
    ps = PowerShell(pool)
    ps.add_cmdlet("Get-Pong")
    if value is not None:
        ps.add_parameter("Value", value)
    return list(ps.invoke())


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _cpu_seconds(pid: int | None) -> float | None:
    """User+system CPU seconds of a child process (Linux /proc), None when unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError, TypeError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sequential(port: int, calls: int, server_pid: int | None = None) -> dict[str, Any]:
    t0 = time.perf_counter()
    with RunspacePool(connect(port)) as pool:
        open_ms = (time.perf_counter() - t0) * 1000
        for _ in range(10):  # warm-up
            invoke(pool)
        samples = []
        cpu0, server0 = time.process_time(), _cpu_seconds(server_pid)
        for _ in range(calls):
            t = time.perf_counter()
            assert invoke(pool) == ["pong"]
            samples.append((time.perf_counter() - t) * 1000)
        cpu_ms = (time.process_time() - cpu0) * 1000 / calls
        server1 = _cpu_seconds(server_pid)
    server_cpu = None
    if server0 is not None and server1 is not None:
        server_cpu = round((server1 - server0) * 1000 / calls, 2)
    return {
        "calls": calls,
        "pool_open_ms": round(open_ms, 2),
        "median_ms": round(statistics.median(samples), 2),
        "p95_ms": round(percentile(samples, 0.95), 2),
        "mean_ms": round(statistics.fmean(samples), 2),
        "min_ms": round(min(samples), 2),
        "max_ms": round(max(samples), 2),
        # CPU of this process per call: client + server in-process, client only otherwise
        "process_cpu_ms_per_call": round(cpu_ms, 2),
        "server_process_cpu_ms_per_call": server_cpu,  # --subprocess only
    }


def parallel(port: int, pools: int, per_pool: int) -> dict[str, Any]:
    def work(index: int) -> list[float]:
        durations = []
        with RunspacePool(connect(port)) as pool:
            for call in range(per_pool):
                t = time.perf_counter()
                if invoke(pool, f"{index}-{call}") != [f"{index}-{call}"]:
                    raise AssertionError(f"pool {index} call {call}: wrong output")
                durations.append((time.perf_counter() - t) * 1000)
        return durations

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=pools) as executor:
        results = list(executor.map(work, range(pools)))
    samples = [d for pool_samples in results for d in pool_samples]
    return {
        "pools": pools,
        "calls_per_pool": per_pool,
        "all_ok": len(samples) == pools * per_pool,
        "wall_s": round(time.perf_counter() - t0, 3),
        "median_ms": round(statistics.median(samples), 2),
        "p95_ms": round(percentile(samples, 0.95), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--pools", type=int, default=16)
    parser.add_argument("--per-pool", type=int, default=10)
    parser.add_argument("--subprocess", action="store_true", help="run the server in a child")
    args = parser.parse_args()

    child = None
    server = None
    if args.subprocess:
        ports: Any = mp.Queue()
        child = mp.Process(target=_serve_forever, args=(ports,), daemon=True)
        child.start()
        port = int(ports.get(timeout=30))
    else:
        server = start_server()
        port = server.port
    try:
        result = {
            "server": "subprocess" if child else "in-process",
            "auth": "ntlm+encryption",
            "sequential": sequential(port, args.calls, child.pid if child else None),
            "parallel": parallel(port, args.pools, args.per_pool),
        }
    finally:
        if server is not None:
            server.stop()
        if child is not None:
            child.terminate()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
