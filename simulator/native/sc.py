"""sc.exe: query, start and stop a service of the host (the services Get-Service sees).

Modelled forms: ``sc.exe query NAME``, ``sc.exe start NAME``, ``sc.exe stop NAME`` (local
computer only). Exit codes: 0; 1060 (no such service); 1056 (start: already running); 1062
(stop: not started). Everything goes to standard output.
"""

from __future__ import annotations

from simulator.native import services as svc
from simulator.native.run import NativeRun, NotModelled

FAILED = {
    1060: ("OpenService", "The specified service does not exist as an installed service."),
    1056: ("StartService", "An instance of the service is already running."),
    1062: ("ControlService", "The service has not been started."),
}
STATES = {
    "query-Running": ("4  RUNNING", "(STOPPABLE, NOT_PAUSABLE, ACCEPTS_SHUTDOWN)"),
    "query-Stopped": ("1  STOPPED", ""),
    "start": ("2  START_PENDING", "(NOT_STOPPABLE, NOT_PAUSABLE, IGNORES_SHUTDOWN)"),
    "stop": ("3  STOP_PENDING", "(STOPPABLE, NOT_PAUSABLE, ACCEPTS_SHUTDOWN)"),
}


def _fail(r: NativeRun, code: int, verb: str) -> int:
    api, text = FAILED[code]
    prefix = "EnumQueryServicesStatus:" if verb == "query" else ""
    r.out(f"[SC] {prefix}{api} FAILED {code}:", "", text, "")
    return code


def run(r: NativeRun) -> int:
    args = [a for a in r.args]
    if len(args) != 2 or args[0].lower() not in ("query", "start", "stop"):
        raise NotModelled("modelled: sc.exe query|start|stop NAME")
    verb, name = args[0].lower(), args[1]
    key = svc.find(r.host, name)
    if key is None:
        return _fail(r, 1060, verb)
    running = r.host.services[key] == "Running"
    if verb == "start" and running:
        return _fail(r, 1056, verb)
    if verb == "stop" and not running:
        return _fail(r, 1062, verb)
    if verb != "query":
        svc.change(r.host, key, verb == "start")
    state, flags = STATES[f"query-{r.host.services[key]}" if verb == "query" else verb]
    lines = ["", f"SERVICE_NAME: {key}", "        TYPE               : 10  WIN32_OWN_PROCESS",
             f"        STATE              : {state}"]  # fmt: skip
    if flags:
        lines.append(f"                                {flags}")
    lines += ["        WIN32_EXIT_CODE    : 0  (0x0)", "        SERVICE_EXIT_CODE  : 0  (0x0)",
              "        CHECKPOINT         : 0x0",
              f"        WAIT_HINT          : {'0x7d0' if verb == 'start' else '0x0'}"]  # fmt: skip
    r.out(*lines, "")
    return 0
