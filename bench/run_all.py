"""``make bench``: every benchmark of issue 7, in one run, as ratios; writes
``bench/results/bench-latest.json`` and the tables of ``BENCHMARKS.md``.

Usage::

    .venv/bin/python bench/run_all.py [--quick] [--only roundtrip,dispatch,overhead,...]
                                      [--classroom 1,5,10,20,30] [--speed 8] [--no-report]

``--quick`` (``make bench QUICK=1``): fewer repeats, a faster simulated clock (15), 1 and 3 labs in
the classroom (a few minutes instead of ~15). Everything runs on a private dev server (ports
24233/24234/24243/24244, worker metrics 24264) and a private simulated fleet on 127.0.34.x
under ``/tmp/hvlab-bench-*``, removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import dispatch, phases, report
from bench.common import (
    ROOT,
    Stack,
    kill_children,
    load_average,
    log,
    machine,
    new_home,
    remove_home,
)
from hvlab.telemetry import configure_logging

RESULTS = ROOT / "bench" / "results"
ALL = ("roundtrip", "dispatch", "overhead", "makespan", "resume", "classroom")
SPEED = 8.0  # simulated seconds per real second for the realistic builds (see BENCHMARKS.md)
QUICK_SPEED = 15.0
MIGRATE_SPEED = 0.25  # the resume benchmark's move (16 simulated s) takes ~65 s: time to kill


async def roundtrip(quick: bool) -> dict[str, Any]:
    """``bench/sim_roundtrip.py``: the simulated WinRM listener alone (server in a child)."""
    argv = [sys.executable, str(ROOT / "bench" / "sim_roundtrip.py"), "--subprocess",
            "--calls", "100" if quick else "300", "--pools", "8", "--per-pool", "10"]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                cwd=ROOT)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"sim_roundtrip.py exited {proc.returncode}")
    result: dict[str, Any] = json.loads(out)
    return result


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    only = [x for x in args.only.split(",") if x] if args.only else list(ALL)
    speed = args.speed or (QUICK_SPEED if args.quick else SPEED)
    sizes = [int(x) for x in args.classroom.split(",")] if args.classroom else (
        [1, 3] if args.quick else [1, 5, 10, 20, 30])
    result: dict[str, Any] = {"machine": machine(), "quick": args.quick,
                              "load_before": load_average(), "benchmarks": {}, "errors": {}}
    started = time.monotonic()
    bench = result["benchmarks"]

    async def guarded(name: str, work: Any) -> None:
        log(f"{name} ...")
        try:
            bench[name] = await work
        except Exception as exc:
            log(f"{name} failed: {exc!r}")
            result["errors"][name] = traceback.format_exc()[-3000:]

    if "roundtrip" in only:
        await guarded("roundtrip", roundtrip(args.quick))
    if "dispatch" in only:
        await guarded("dispatch", dispatch.run(args.quick))
    main_phases = [p for p in ("overhead", "makespan", "resume", "classroom") if p in only]
    if main_phases:
        home = new_home("main")
        stack = Stack(home)
        try:
            client = await stack.start()
            if "overhead" in main_phases:
                await guarded("overhead", phases.overhead(stack, client, args.quick))
            if "makespan" in main_phases:
                await guarded("makespan", phases.makespan(stack, client, speed))
            if "resume" in main_phases:
                await guarded("resume", phases.resume(stack, client, MIGRATE_SPEED))
            if "classroom" in main_phases:
                if stack.worker is None or stack.worker.poll() is not None:
                    stack.start_worker()
                    await stack.wait_worker(client)
                extend = None if args.quick or args.classroom else 40
                await guarded("classroom", phases.classroom(stack, client, sizes, speed,
                                                            extend_to=extend))
        finally:
            stack.stop()
            if not args.keep:
                remove_home(home)
    result["load_after"] = load_average()
    result["duration_s"] = round(time.monotonic() - started, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="")
    parser.add_argument("--classroom", default="", help="lab counts, e.g. 1,5,10,20,30")
    parser.add_argument("--speed", type=float, default=0.0)
    parser.add_argument("--keep", action="store_true", help="keep the bench HVLAB_HOME")
    parser.add_argument("--no-report", action="store_true", help="do not touch BENCHMARKS.md")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench-latest.json")
    parser.add_argument("--report-only", type=Path, default=None,
                        help="regenerate BENCHMARKS.md from a results file, run nothing")
    args = parser.parse_args()
    if args.report_only:
        report.write(json.loads(args.report_only.read_text()), ROOT / "BENCHMARKS.md")
        return 0
    configure_logging("console", "WARNING")  # the serial replay runs activities in-process

    def interrupted(signum: int, _frame: Any) -> None:
        kill_children()  # dev servers, workers and fleets run in their own sessions
        for home in Path(tempfile.gettempdir()).glob(f"hvlab-bench-*-{os.getpid()}-*"):
            remove_home(home)
        os._exit(128 + signum)

    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    result = asyncio.run(main_async(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    log(f"wrote {args.out}")
    if not args.no_report:
        report.write(result, ROOT / "BENCHMARKS.md")
        log("wrote BENCHMARKS.md")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # temporalio clients can crash at interpreter teardown
