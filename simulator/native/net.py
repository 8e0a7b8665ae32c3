"""net: start and stop a service of the host (the services Get-Service sees).

Modelled forms: ``net start NAME`` and ``net stop NAME`` (service name or display name).
Exit codes: 0; 2 with the NET HELPMSG text on standard error (2185 no such service, 2182
already started, 3521 not started). Other ``net`` commands (``use``, ``user``, ``localgroup``,
``start`` without a name) are not modelled.
"""

from __future__ import annotations

from simulator.native import services as svc
from simulator.native.run import NativeRun, NotModelled

HELP = {
    2185: "The service name is invalid.",
    2182: "The requested service has already been started.",
    3521: "The {name} service is not started.",
}


def _fail(r: NativeRun, number: int, name: str = "") -> int:
    r.err(HELP[number].format(name=name), "",
          f"More help is available by typing NET HELPMSG {number}.", "")  # fmt: skip
    return 2


def run(r: NativeRun) -> int:
    args = list(r.args)
    if len(args) < 2 or args[0].lower() not in ("start", "stop"):
        raise NotModelled("modelled: net start|stop NAME")
    verb, name = args[0].lower(), " ".join(args[1:])
    key = svc.find(r.host, name, by_display=True)
    if key is None:
        return _fail(r, 2185)
    shown = svc.display_name(key)
    running = r.host.services[key] == "Running"
    if verb == "start" and running:
        return _fail(r, 2182)
    if verb == "stop" and not running:
        return _fail(r, 3521, shown)
    svc.change(r.host, key, verb == "start")
    ing, ed = ("starting", "started") if verb == "start" else ("stopping", "stopped")
    r.out(f"The {shown} service is {ing}.", f"The {shown} service was {ed} successfully.", "")
    return 0
