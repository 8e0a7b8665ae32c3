"""BENCHMARKS.md from a ``bench/run_all.py`` result (tables regenerated on every run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hvlab.devstack import DYNAMIC_CONFIG


def _f(value: Any, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("**pass**" if ok else "**miss**")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return [*out, ""]


WHY = {
    "1": "WinRM, not Temporal: each step is ~3 pipelines (probe, change, verify) of real "
         "NTLM-encrypted round trips, the chain's step is a no-op (section 1); one pipeline per "
         "step or a faster transport would reach it",
    "1b": "the worker's steps share one GIL with parallel units' pypsrp/NTLM work and each "
          "unit's first step pays a child workflow start, on a loaded 2-core machine; more "
          "worker processes or less per-step CPU would reach it",
    "3": "per_host_limit=2: SVR1's three VM deployments and its delegation unit wait for a "
         "slot (3b shows the bound with the limit); per_host_limit=3 would reach it on the "
         "simulator (section 3)",
    "3c": "the lab's DAG caps it (serial / best schedule, in the reached column): the two host "
          "preparations with two reboots each are the long pole; a lab with more independent "
          "hosts, or several labs at once (section 5), would exceed 3x",
    "3b": "orchestration between the path's steps (step gaps, child starts) on a loaded "
          "machine, and the 1 s poll granularity of host.wait_ready",
    "4": "a host.wait_ready probe reached the host before it went down (finding 2) and its "
         "shell died with the old boot; host.reboot now waits for the old boot to go",
    "5": "see section 5",
    "6": "see section 6",
}


def _summary(b: dict[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    o = b.get("overhead")
    if o:
        rows.append(["1 orchestration overhead (build per activity / bare chain)", "≤ 1.2",
                     f"{o['ratio']} ({o['build_per_activity_ms']} / {o['chain_per_activity_ms']}"
                     " ms)", _verdict(o["ratio"] <= 1.2)])
        rows.append(["1b … orchestration only (gap between steps / bare chain)", "(≤ 1.2)",
                     f"{o['orchestration_ratio']} ({o['step_gap_ms']} / "
                     f"{o['chain_per_activity_ms']} ms)",
                     _verdict(o["orchestration_ratio"] <= 1.2)])
    d = b.get("dispatch")
    if d:
        v = d["variants"]
        rows.append(["2 dispatch floor, embedded settings (file db)", "measure",
                     f"{_f(v['embedded']['chain']['per_activity_ms'], ' ms', 1)} per activity "
                     f"(defaults: {_f(v['file-default']['chain']['per_activity_ms'], ' ms', 1)};"
                     f" in-memory: {_f(v['memory']['chain']['per_activity_ms'], ' ms', 1)})",
                     "-"])
        if "long_chain" in v["embedded"]:
            rows.append(["2 … 60-step chain, defaults / embedded", "measure",
                         str(d["ratios"].get("long_chain_default_over_embedded")), "-"])
    m = b.get("makespan")
    if m:
        rows.append(["3 makespan / critical path (DAG)", "≤ 1.05",
                     f"{m['ratio_to_critical_path']} ({m['makespan_s']} / "
                     f"{m['critical_path_s']} s)",
                     _verdict(m["ratio_to_critical_path"] <= 1.05)])
        rows.append(["3b makespan / bound with per_host_limit=2", "(≤ 1.05)",
                     f"{m['ratio_to_host_limited_bound']} ({m['host_limited_bound_s']} s)",
                     _verdict(m["ratio_to_host_limited_bound"] <= 1.05)])
        rows.append(["3c speedup over the serial script", "≥ 3x",
                     f"{m['speedup']}x ({m['serial_s']} / {m['makespan_s']} s; DAG allows "
                     f"{m['speedup_bound']}x)", _verdict(m["speedup"] >= 3)])
        shells = {h: v["shells_created"] for h, v in m["winrm_per_host"].items()}
        reboots = m.get("reboots_per_host", {})
        one_each = all(shells[h] == 1 + reboots.get(h, 0) for h in shells)
        rows.append(["4 shells per host per worker", "1, reused (+1 per reboot)",
                     ", ".join(f"{h} {n}" for h, n in shells.items()) + " (reboots "
                     + "/".join(str(reboots.get(h, 0)) for h in shells) + ")",
                     _verdict(one_each)])
    c = b.get("classroom")
    if c:
        last = next((s for s in c["steps"] if s["labs"] == 30), c["steps"][-1])
        all_ok = last["succeeded"] == last["labs"]
        rows.append([f"5 classroom: {last['labs']} labs at once, all succeed", "all succeed",
                     f"{last['succeeded']}/{last['labs']}, p50 {last['p50_s']} s, p95 "
                     f"{last['p95_s']} s", _verdict(all_ok)])
        knee = c["knee_labs"] or "not reached"
        rows.append(["5 knee (p95 ≥ 2 x 1-lab p95)", "find", f"{knee} labs", "-"])
    s = b.get("resume")
    if s:
        ok = s["kill_to_repoll_s"] is not None and s["kill_to_repoll_s"] <= s["target_s"]
        rows.append(["6 resume: SIGKILL → job polled again", f"≤ {s['target_s']:g} s",
                     f"{s['kill_to_repoll_s']} s (heartbeat timeout {s['heartbeat_timeout_s']:g}"
                     " s)", _verdict(ok)])
        rows.append(["6 duplicate Move-VM", "0", str(s["duplicate_move_vm"]),
                     _verdict(s["duplicate_move_vm"] == 0)])
    return rows


def write(result: dict[str, Any], path: Path) -> None:
    b = result["benchmarks"]
    m = result["machine"]
    lines = [
        "# hvlab benchmarks",
        "",
        "Generated by `make bench` (`bench/run_all.py`) — do not edit the tables by hand; the",
        "notes below them are part of the generator. Raw figures: "
        "`bench/results/bench-latest.json`.",
        "Every figure is a ratio of two measurements taken in the same run on the same machine,",
        "because absolute times on this shared 2-core machine drift with the other engineers' "
        "test runs.",
        "",
        "## Machine and run",
        "",
        *_table(["", ""], [
            ["date", m["date"]], ["CPU", f"{m['cpu']} ({m['cores']} cores)"],
            ["RAM", f"{m['ram_gb']} GB"], ["OS", m["os"]], ["Python", m["python"]],
            ["temporalio / pypsrp", f"{m['temporalio']} / {m['pypsrp']}"],
            ["temporal CLI", m["temporal_cli"].replace("\n", " ")],
            ["commit", m["commit"]],
            ["load average before / after", f"{result['load_before']} / "
             f"{result.get('load_after')}"],
            ["mode", "quick" if result["quick"] else "full"],
            ["duration", f"{result.get('duration_s')} s"],
        ]),
        "The machine was shared with other engineers' test runs during the run (see the load "
        "average); ratios measured back to back hold better than absolute times.",
        "",
        "## Re-run",
        "",
        "```sh",
        "make bench              # full: ~15 min, writes bench/results/bench-latest.json "
        "and this file",
        "make bench QUICK=1      # quick: fewer repeats, sim speed 15, classroom 1 and 3 labs",
        ".venv/bin/python bench/run_all.py --only dispatch,overhead --no-report   # a subset",
        ".venv/bin/python bench/run_all.py --classroom 1,5,10 --speed 8",
        "```",
        "",
        "Private ports 24233/24234/24243/24244 (dev server), 24264 (worker metrics); simulated "
        "hosts on 127.0.34.x with ephemeral ports; `HVLAB_HOME=/tmp/hvlab-bench-*` (removed).",
        "",
        "## Summary",
        "",
        *_table(["benchmark", "target", "reached", "verdict", "if missed: why / what would "
                 "reach it"], [[*row, WHY.get(row[0][:2].strip(), "") if "miss" in row[3] else ""]
                               for row in _summary(b)]),
    ]
    if result.get("errors"):
        lines += ["Benchmarks that failed in this run: " + ", ".join(result["errors"]), ""]
    for note in result.get("reruns", []):
        lines += [f"Note: {note}", ""]
    lines += _overhead(b.get("overhead"))
    lines += _dispatch(b.get("dispatch"))
    lines += _makespan(b.get("makespan"))
    lines += _winrm(b.get("makespan"), b.get("roundtrip"))
    lines += _classroom(b.get("classroom"))
    lines += _resume(b.get("resume"))
    lines += FINDINGS
    path.write_text("\n".join(lines).rstrip() + "\n")


def _overhead(o: dict[str, Any] | None) -> list[str]:
    if not o:
        return []
    rtt = o["pipeline_round_trip"]
    return [
        "## 1. Orchestration overhead",
        "",
        "The seed build (`LabBuildWorkflow` on `examples/classroom-lab.yaml`, started as `hvlab "
        "up --sim` starts it) on the simulator at infinite speed (`--speed 0`: every simulated "
        "operation is instant, only protocol and orchestration remain), against the bare chain "
        "(`bench/chain.py`: N sequential no-op activities called like hvlab's steps, same "
        "worker process, same dev server, measured right before and after each build).",
        "",
        *_table(["figure", "value"], [
            ["builds (makespan, history)", ", ".join(f"{x} s" for x in o["builds_s"])],
            ["activities / child workflows", f"{o['activities']} / {o['child_workflows']}"],
            ["build: makespan per activity", f"{o['build_per_activity_ms']} ms"],
            ["bare chain: per activity", f"{o['chain_per_activity_ms']} ms (samples "
             f"{o['chain_samples_ms']})"],
            ["**ratio**", f"**{o['ratio']}**"],
            ["mean activity execution (started → completed)", f"{o['mean_activity_exec_ms']} ms"],
            ["WinRM requests in the build / per activity", f"{o['winrm_requests']} / "
             f"{o['winrm_requests_per_activity']}"],
            ["one pipeline (Get-VMHost) through the SessionPool, alone", f"{rtt['median_ms']} "
             f"ms median, {rtt['p95_ms']} ms p95"],
            ["pipelines per activity x that = WinRM estimate per activity",
             f"{o['pipelines_per_activity']} x {rtt['median_ms']} = "
             f"{o['winrm_estimate_per_activity_ms']} ms"],
            ["gap between two steps of a unit (previous closed → next started), mean / p50",
             f"{o['step_gap_ms']} / {o['step_gap_p50_ms']} ms over {o['step_gaps_counted']} "
             "sequential steps"],
            ["**orchestration / bare chain**", f"**{o['orchestration_ratio']}**"],
        ]),
        "What the remainder is: each activity of the build is a remote step, on average "
        f"{o['winrm_requests_per_activity']} WinRM requests (a probe first, then the change, "
        "then a verify: 2-6 pipelines of Command + Receive, NTLM-encrypted; section 4) "
        f"costing {o['mean_activity_exec_ms']} ms of execution in the worker, against ~0 ms "
        "for a no-op. The makespan per activity divides the whole build by its activity count, "
        "so it is mostly that WinRM time (the build runs two or more units in parallel, which "
        "is why it is not larger still); WinRM is "
        f"{int(100 * (o['winrm_share_of_activity_time'] or 0))} % of a step's time. The "
        "orchestration part proper is the gap between two steps of a unit (Temporal's "
        "dispatch plus the workflow code): that is the figure comparable with the bare chain. "
        "It is above the chain because the build's steps share the worker process with "
        "parallel units' pypsrp/NTLM work (one GIL) on a loaded 2-core machine, and because the "
        "first step of each unit also pays the child workflow's start. Reaching ≤ 1.2 on the "
        "whole-build figure is not a Temporal matter: it would take remote steps with about "
        "one pipeline each (probe+change+verify in one packaged script) or a faster transport; "
        "the orchestration gap would shrink with the worker's activities in more processes "
        "(or threads not contending for the GIL).",
        "",
    ]


def _reader_verdicts(d: dict[str, Any]) -> list[str]:
    """Default vs raised, per reader, from the variants that differ only in it."""
    v = d["variants"]
    raised, low, default = v["embedded"], v["file-transfer-only"], v["file-default"]
    return [
        "Default (20/s) vs raised (1000/s), each reader on its own (file db):",
        "",
        *_table(["reader", "hvlab flow", "default", "raised"], [
            ["transfer", "sequential steps (chain of 60, per activity)",
             _f(default["long_chain"]["per_activity_ms"], " ms", 1),
             _f(raised["long_chain"]["per_activity_ms"], " ms", 1)],
            ["transfer", "10 workflows at once (activities/s)",
             _f(default["throughput"]["activities_per_s"], "/s", 1),
             _f(raised["throughput"]["activities_per_s"], "/s", 1)],
            ["timer", "workflow-side polling loop, timer lateness p95",
             _f(low["timers"]["late_p95_ms"], " ms", 0),
             _f(raised["timers"]["late_p95_ms"], " ms", 0)],
            ["visibility", "`hvlab status` right after a start (single)",
             _f(low["visibility"]["single_p50_ms"], " ms", 0),
             _f(raised["visibility"]["single_p50_ms"], " ms", 0)],
            ["visibility", f"burst of {raised['visibility']['burst']} starts, all listed",
             _f(low["visibility"]["burst_all_listed_ms"], " ms", 0),
             _f(raised["visibility"]["burst_all_listed_ms"], " ms", 0)],
            ["outbound", "(not used by hvlab)", "-", "-"],
        ]),
        "The limiter caps reader *polls*, and a poll loads every due task in a batch: it only "
        "shows where one task at a time is due, i.e. a single sequential chain on an "
        "otherwise idle server once the burst of 20 is spent, and only when the server is "
        "fast enough to outrun 20 steps/s (in-memory, 60 steps: "
        f"{_f(v['memory-default']['long_chain']['per_activity_ms'], ' ms', 1)} default vs "
        f"{_f(v['memory']['long_chain']['per_activity_ms'], ' ms', 1)} raised; on a loaded "
        "machine the file db's own cost hides part of it). With many workflows at once "
        "(timers, visibility bursts, 10 chains) each poll carries several tasks, so the cap "
        "bites less; differences of a few tens of ms in those rows are within this machine's "
        "run-to-run noise. For hvlab the timer reader matters where a timer gates progress "
        "(heartbeat timeouts: section 6; retry backoffs), the visibility reader only for how "
        "soon `hvlab status` lists a new workflow; raising all four costs nothing at hvlab's "
        "rates, so the recommendation is to raise all four.",
        "",
    ]


DEPLOY_CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "temporal" / "dynamicconfig.yaml"


def _deploy_check() -> str:
    """Whether deploy/temporal/dynamicconfig.yaml carries the recommended values."""
    if not DEPLOY_CONFIG.exists():
        return "`deploy/temporal/dynamicconfig.yaml` does not exist yet."
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(DEPLOY_CONFIG.read_text()) or {}
    differ = []
    for key, value in DYNAMIC_CONFIG.items():
        entries = data.get(key) or []
        found = entries[0].get("value") if entries and isinstance(entries[0], dict) else None
        if found != value:
            differ.append(f"`{key}` is {found} there, {value} here")
    if differ:
        return "`deploy/temporal/dynamicconfig.yaml` differs: " + "; ".join(differ) + "."
    return ("`deploy/temporal/dynamicconfig.yaml` carries the same four values (checked when "
            "this file was generated).")


def _dispatch(d: dict[str, Any] | None) -> list[str]:
    if not d:
        return []
    rows = []
    for name, v in d["variants"].items():
        rows.append([name, v["what"], _f(v["chain"]["per_activity_ms"], " ms", 1),
                     _f(v.get("long_chain", {}).get("per_activity_ms"), " ms", 1),
                     _f(v.get("throughput", {}).get("activities_per_s"), "/s", 1),
                     _f(v["timers"]["late_p50_ms"], " ms", 0) + " / "
                     + _f(v["timers"]["late_p95_ms"], " ms", 0),
                     _f(v["visibility"]["single_p50_ms"], " ms", 0),
                     _f(v["visibility"]["burst_all_listed_ms"], " ms", 0)])
    t = d["variants"]["embedded"]["timers"]
    vis = d["variants"]["embedded"]["visibility"]
    rec = "\n".join(f"{key}:\n  - value: {value}" for key, value in DYNAMIC_CONFIG.items())
    return [
        "## 2. Dispatch floor and the history queue readers",
        "",
        "Per dev-server variant: the bare chain (20 no-op activities, median of several "
        "chains, after a warm-up; and 60, past the reader's burst of 20); 10 chains at once "
        "(activities per second through the server: the dev server "
        "has one history shard, whose readers serve every workflow); timers: "
        f"{t['workflows']} workflows at once, each `workflow.sleep(1 s)` x "
        f"{t['ticks']} (how late each timer's workflow task ran, p50 / p95); visibility: start → "
        "listed by `list_workflows` (what `hvlab status` reads), one at a time (p50) and a "
        f"burst of {vis['burst']} started together (until all are listed).",
        "",
        *_table(["variant", "server", "chain (20) per activity", "chain (60) per activity",
                 "10 chains at once",
                 "timer late p50 / p95",
                 "visible (single)", f"visible (burst {vis['burst']})"], rows),
        f"Ratios: defaults / embedded = {d['ratios']['file_default_over_embedded']} (20 steps),"
        f" {d['ratios'].get('long_chain_default_over_embedded')} (60 steps); in-memory /"
        f" embedded = {d['ratios']['memory_over_embedded']}; throughput embedded / defaults = "
        f"{d['ratios'].get('throughput_embedded_over_default')}.",
        "",
        *_reader_verdicts(d),
        "How hvlab actually uses the readers:",
        "",
        "- **transfer** (every workflow/activity task after the first in a burst): the chain "
        "above; this is the one that matters for every build step.",
        "- **timer**: hvlab polls inside activities (`host.wait_ready`, `migration.poll_job`, "
        "`replica.wait_state` sleep in the worker thread and heartbeat), so the timer queue "
        "carries only LiveMigrationWorkflow's 10 s progress sampling (`workflow.wait(timeout)`),"
        " the failover approval timeout, activity retry backoffs, and heartbeat/start-to-close "
        "timeouts (the resume benchmark below depends on the heartbeat timeout firing on time).",
        "- **visibility**: `hvlab status`/`list_workflows` and the Web UI; a started build shows "
        "up after the visibility task is processed.",
        "- **outbound**: Nexus operations and completion callbacks; hvlab uses neither, so the "
        "outbound reader is idle (raising it costs nothing).",
        "",
        "Recommended dynamic config for a real cluster (same as the embedded stack, "
        "`hvlab/devstack.py` `DYNAMIC_CONFIG`), in `dynamicconfig.yaml` form:",
        "",
        "```yaml",
        rec,
        "```",
        "",
        _deploy_check(),
        "",
        "On a real cluster with a proper database these caps guard the database: 1000/s per "
        "history shard is what the chain needs to stop waiting on the limiter (≥ 100 already "
        "suffices for one lab); raise the persistence QPS limits alongside if they are lower.",
        "",
    ]


def _makespan(m: dict[str, Any] | None) -> list[str]:
    if not m:
        return []
    busy = sorted(m["unit_busy_s"].items(), key=lambda kv: -kv[1])
    return [
        "## 3. Makespan",
        "",
        f"The seed build with realistic simulated durations at speed {m['speed']:g} (simulated "
        "seconds per real second; `simulator/clock.py` `Durations`: reboot 90 s, Hyper-V role "
        "40 s, guest boot 30 s, disk copy 250 MB/s, ...). Speed 1 would take 5-6 minutes; at "
        f"{m['speed']:g} the build takes {m['makespan_s']} s wall, long enough that per-step "
        "orchestration (tens of ms) is small against remote work, short enough for `make "
        "bench`. All simulated durations scale by the same factor, so the ratios do not depend "
        "on it (only the fixed 1 s poll interval of `host.wait_ready` does not scale).",
        "",
        "Step durations come from the run's own history (ActivityTaskStarted → Completed of "
        "each activity), not from the simulator's duration table: they include the WinRM round "
        "trips and the polling granularity the table does not know. A unit's weight is the "
        "time covered by its activities; the critical path is the longest path through "
        "`workflows.kinds.build_plan` with those weights (a lower bound on any schedule). The "
        "second bound also applies LabBuildWorkflow's own `per_host_limit=2` (units touching "
        "a host at a time) with zero overhead.",
        "",
        *_table(["figure", "value"], [
            ["makespan (history: started → completed)", f"{m['makespan_s']} s"],
            ["critical path (DAG)", f"{m['critical_path_s']} s: " + " → ".join(
                m["critical_path"])],
            ["**makespan / critical path**", f"**{m['ratio_to_critical_path']}**"],
            ["bound with per_host_limit=2", f"{m['host_limited_bound_s']} s"],
            ["**makespan / that bound**", f"**{m['ratio_to_host_limited_bound']}**"],
            ["serial script (same steps in-process via pypsrp, fresh fleet)",
             f"{m['serial_s']} s ({m['serial_retries']} retries: "
             f"{_retried(m.get('serial_retried', []))})"],
            ["**speedup over serial**", f"**{m['speedup']}x**"],
            ["best possible speedup (serial / bound)", f"{m['speedup_bound']}x"],
            ["DAG parallelism (sum of unit busy / critical path)", f"{m['dag_parallelism']}"],
        ]),
        "Unit busy times (s): " + ", ".join(f"{u} {s}" for u, s in busy),
        "",
        "Why the targets are or are not met: the gap between the makespan and the DAG critical "
        "path is mostly `per_host_limit=2` — SVR1 carries three VM deployments plus its "
        "delegation and readiness units, so one of them waits for a slot (the per-host bound "
        "shows it); what remains against that bound is orchestration (child workflow start, "
        "the 1 s poll granularity of `host.wait_ready`). Raising `per_host_limit` to 3 would "
        "let the build reach the DAG bound on the simulator, but on real hosts parallel disk "
        "copies share the same disks, which the simulator does not model. The speedup over the "
        "serial script is bounded by the DAG itself: the two host preparations (two reboots "
        "each) are most of the work, they can only overlap with each other, and everything "
        "else waits for them, so no scheduler can beat serial / bound on this lab; ≥ 3x needs "
        "a lab with more independent hosts (or several labs at once: section 5). The serial "
        "script's `host.hyperv_role` time includes its retries while the host, which "
        "`host.wait_ready` wrongly found ready before the fix, was still rebooting (finding 2); a "
        "straight script would wait for the reboot in some way too, so it is kept.",
        "",
    ]


def _roundtrip(rt: dict[str, Any] | None) -> list[str]:
    if not rt:
        return []
    seq, par = rt["sequential"], rt["parallel"]
    return [
        "The simulated listener alone (`bench/sim_roundtrip.py --subprocess`: pypsrp, NTLM with "
        "message encryption, a trivial command; server in its own process): one pipeline "
        f"{seq['median_ms']} ms median ({seq['p95_ms']} ms p95, client CPU "
        f"{seq['process_cpu_ms_per_call']} ms, server CPU {seq['server_process_cpu_ms_per_call']}"
        f" ms per call); RunspacePool open {seq['pool_open_ms']} ms; {par['pools']} pools in "
        f"parallel: {par['median_ms']} ms median per call.",
        "",
    ]


def _retried(items: list[str]) -> str:
    kinds: dict[str, int] = {}
    for item in items:
        name = item.split(":", 1)[0]
        kinds[name] = kinds.get(name, 0) + 1
    return ", ".join(f"{k} x{n}" for k, n in kinds.items()) or "none"


def _winrm(m: dict[str, Any] | None, rt: dict[str, Any] | None = None) -> list[str]:
    if not m:
        return _roundtrip(rt)
    hosts = [[h, v["shells_created"], m.get("reboots_per_host", {}).get(h, 0), v["connections"],
              v["commands"], v["requests"]] for h, v in m["winrm_per_host"].items()]
    steps = [[name, v["count"], v["pipelines_per_step"], v["requests_per_step"],
              _f(v["seconds_per_step"] * 1000, " ms", 0)]
             for name, v in m["winrm_per_step"].items()]
    total = sum(v["requests"] for v in m["winrm_per_host"].values())
    return [
        "## 4. WinRM efficiency",
        "",
        "Counted by the simulated hosts' WinRM listeners (`simulator/winrm` request counts per "
        "WS-Man action: Create = a new shell/RunspacePool, Command = a pipeline, Receive, Send,"
        " Signal, Delete) during the build of section 3 (one worker).",
        "",
        *_table(["host", "shells created", "reboots", "TCP connections", "pipelines",
                 "WS-Man requests"], hosts),
        f"Total: {total} WS-Man requests for {m['activities']} activities. One RunspacePool per "
        "(host, credential) per worker process is opened on first use and reused by every "
        "activity; a host reboot kills it (as on Windows) and the next step reopens it. "
        "`host.reboot` now waits through the session it has until the old boot stops "
        "answering, so the next shell is opened on the new boot; before, `host.wait_ready` "
        "could open one on the boot that was shutting down, which died with it (finding 2 "
        "below: SVR1 5 and SVR2 3 shells for 2 reboots each).",
        "",
        "Round trips per step type (measured in the serial replay, where steps run one at a "
        "time so the counters attribute exactly; a pipeline is one Command plus its Receive "
        "long-polls):",
        "",
        *_table(["activity", "steps", "pipelines / step", "WS-Man requests / step",
                 "time / step (serial, at the bench speed)"], steps),
        *_roundtrip(rt),
    ]


def _classroom(c: dict[str, Any] | None) -> list[str]:
    if not c:
        return []
    rows = [[s["labs"], f"{s['succeeded']}/{s['labs']}", s["p50_s"], s["p95_s"],
             s.get("builds_span_s", s["wall_s"]),
             s["activities"], s["activities_per_s"], s["worker_cpu_cores"],
             s["worker_rss_peak_mb"],
             f"{s.get('server_cpu_cores')} / {s.get('fleet_cpu_cores')}",
             f"{s.get('shells_per_host', {}).get('dc_max')} / "
             f"{s.get('shells_per_host', {}).get('hyperv_max')}",
             s.get("winrm_requests_per_lab"),
             (s.get("load_average_after") or ["-"])[0]] for s in c["steps"]]
    fails = [f for s in c["steps"] for f in s["failed"]]
    return [
        "## 5. Classroom",
        "",
        f"N copies of the seed lab built at once by one worker, one dev server and one "
        f"simulated fleet process, at speed {c['speed']:g}. Copies coexist by name: lab "
        "`cNN` (workflow ids `cNN-build/...`) and hosts `LNNDC1`/`LNNSVR1`/`LNNSVR2` (the "
        "worker finds endpoints by host name in one `endpoints.json`, so host names must be "
        "unique across labs served by one `HVLAB_HOME`); every copy has its own simulated "
        "world, so the domain, VM names and guest IPs repeat freely; copy k listens on "
        "127.0.34.(3k+1..3k+3).",
        "",
        *_table(["labs", "ok", "p50 build s", "p95 build s", "first start → last end s",
                 "activities",
                 "activities/s", "worker CPU (cores)", "worker RSS peak MB",
                 "server / fleet CPU (cores)",
                 "max shells per DC / Hyper-V host", "WS-Man requests per lab",
                 "machine load (1 min) at the end"], rows),
        f"Knee ({c['knee_rule']}): **{c['knee_labs'] or 'not reached in the steps run'}**.",
        "",
        *(["Failures: " + "; ".join(fails), ""] if fails else []),
        *_classroom_reading(c),
        "",
    ]


def _classroom_reading(c: dict[str, Any]) -> list[str]:
    steps = c["steps"]
    top = max(steps, key=lambda s: s["activities_per_s"])
    worker = max(s["worker_cpu_cores"] for s in steps)
    ours = max(s["worker_cpu_cores"] + (s.get("server_cpu_cores") or 0)
               + (s.get("fleet_cpu_cores") or 0) for s in steps)
    loads = [(s.get("load_average_after") or [None])[0] for s in steps]
    return [
        f"Reading it: throughput climbs to {top['activities_per_s']} activities/s "
        f"({top['labs']} labs) and then levels off; the worker never used more than {worker} "
        f"of a core and worker + dev server + fleet together at most {ours} cores, while the "
        f"machine's 1-minute load was {', '.join(str(x) for x in loads if x is not None)} at "
        "the end of the steps (other engineers' test and chaos runs on the same 2 cores). So "
        "past the knee the builds wait mostly for CPU time on a saturated machine"
        + (" (no build failed or timed out)" if all(not s["failed"] for s in steps) else "")
        + ". Worker slots are the next limit: both Hyper-V hosts' reboot waits (`host."
        "wait_ready` holds an activity slot and a thread while it polls) of 30 labs take 60 of "
        "the 64 slots (`HVLAB_MAX_CONCURRENT_ACTIVITIES`) at once, so a larger classroom wants "
        "that setting raised or a second worker. On an idle machine the knee moves out until "
        "the worker "
        "process saturates its one core (one GIL for workflow tasks and every activity's "
        "pypsrp/NTLM work); beyond that, more worker processes on the same task queue share "
        "the load without any change to hvlab.",
    ]


def _resume(s: dict[str, Any] | None) -> list[str]:
    if not s:
        return []
    return [
        "## 6. Resume after a worker crash",
        "",
        "A shared-nothing live migration of win2003-1 (the move slowed to speed "
        f"{s['migrate_speed']:g} so it runs for about a minute); once `migration.poll_job` has "
        "heartbeated its progress the worker is SIGKILLed and a new one started at once. "
        "Measured: the kill to the moment the new worker's attempt of `migration.poll_job` "
        "started (pending activity `last_started_time`; its first act is the job query), then "
        "the simulator's Move-VM counter once the migration completed.",
        "",
        *_table(["figure", "value"], [
            ["heartbeat timeout (LONG_JOB)", f"{s['heartbeat_timeout_s']:g} s"],
            ["last recorded heartbeat before the kill", f"{s['last_heartbeat_age_at_kill_s']} s"],
            ["new worker polling after", f"{s['new_worker_ready_s']} s"],
            ["**kill → job polled again**", f"**{s['kill_to_repoll_s']} s** (target ≤ "
             f"{s['target_s']:g} s)"],
            ["Move-VM on the source (at kill / at the end)", f"{s['move_vm_at_kill']} / "
             f"{s['move_vm_on_source']}"],
            ["**duplicate Move-VM**", f"**{s['duplicate_move_vm']}**"],
            ["migration result", str(s["migration_result"])],
        ]),
        "The retry starts when the server notices the missing heartbeat: at most the heartbeat "
        "timeout after the last heartbeat it recorded (the SDK sends heartbeats at most every "
        "0.8 x timeout, so it can be sooner than the timeout after the kill), plus the timer "
        "queue's latency. The new attempt resumes from the heartbeat details and re-attaches to "
        "the running job; no second Move-VM is sent.",
        "",
    ]


FINDINGS = [
    "## Bugs the benchmarks exposed",
    "",
    "1. **Concurrent first use of a host opened several RunspacePools** (fixed in "
    "`hvlab/powershell/session.py`, commit \"SessionPool: activities that need the same host at "
    "once wait for one RunspacePool\"). `SessionPool._get` opened a pool outside its lock and "
    "closed the loser, so the storage and delegation units, which start together on the DC, "
    "cost a second shell and NTLM logon on DC1 (2 shells instead of 1 in benchmark 4). Now "
    "one opening per (host, credential) at a time; the others wait for it.",
    "2. **`host.wait_ready` could return before the reboot had happened** (fixed in "
    "43dacb0). `host.reboot` sends `Restart-Computer` and returns; `host.wait_ready` accepted "
    "the first answer, which could still come from the old boot while the host shut down "
    "(real Windows takes seconds to go down; the simulator 0.05 s). The serial replay hit it "
    "every time (`host.hyperv_role` retried until the host was back). Now `host.reboot`'s "
    "`last_boot_before` goes to `host.wait_ready` (`WaitReadyInput.booted_before`, behind "
    "`workflow.patched(\"wait-for-new-boot\")`) and an answer from that same boot is 'not "
    "ready yet'. The probe still opened a shell on the old boot, which died with it: one "
    "extra shell per reboot in benchmark 4. Now `host.reboot` polls through the session it "
    "already has until the old boot stops answering (or answers from a new boot), so "
    "`host.wait_ready` opens its shell on the new boot (tests count one new shell per reboot "
    "at real reboot timing and at speed 0; a retried reboot does not restart the host "
    "again).",
    "",
]
