"""ping: ICMP echo per the fleet's reachability model (:func:`simulator.reachability.probe`).

Modelled form: ``ping [-n COUNT] [-w TIMEOUT_MS] [-l SIZE] [-4] TARGET`` (TARGET an IPv4
address or a host name DNS resolves; guests are not in DNS). One echo per second of simulated
time, each evaluated against the world as it is then (a VM that stops answering mid-run shows
"Request timed out." from then on). Exit code 0 when at least one reply came back, else 1; a
name that does not resolve: exit code 1. ``-t`` (until stopped) is not modelled.
"""

from __future__ import annotations

import ipaddress

from simulator import reachability
from simulator.native.run import NativeRun, NotModelled


def _number(value: str, flag: str, low: int, high: int) -> int:
    if not value.isdigit() or not low <= int(value) <= high:
        raise NotModelled(f"{flag} {value} is not modelled")
    return int(value)


def _ttl(r: NativeRun, address: str) -> int:
    """128 from Windows, 64 from a Linux guest."""
    for host in r.world.hosts.values():
        for vm in host.vms.values():
            if any(ip.split("/")[0] == address for ips in vm.guest.ips.values() for ip in ips):
                return 64 if vm.guest.os == "linux" else 128
    return 128


def run(r: NativeRun) -> int:
    count, size, timeout, target = 4, 32, 4000, None
    args = list(r.args)
    while args:
        word = args.pop(0)
        flag = word.lower().replace("/", "-", 1) if word[:1] in "-/" else ""
        if flag in ("-n", "-l", "-w") and args:
            value = args.pop(0)
            if flag == "-n":
                count = _number(value, flag, 1, 4294967295)
            elif flag == "-l":
                size = _number(value, flag, 0, 65500)
            else:
                timeout = _number(value, flag, 1, 4294967295)
        elif flag == "-4":
            continue
        elif not flag and target is None:
            target = word
        else:
            raise NotModelled("modelled: ping [-n COUNT] [-w MS] [-l SIZE] [-4] TARGET")
    if target is None:
        raise NotModelled("ping without a target")
    address = reachability.resolve_name(r.world, target)
    if address is None:
        r.out(f"Ping request could not find host {target}. Please check the name and try "
              "again.")  # fmt: skip
        return 1
    shown = address
    try:
        ipaddress.IPv4Address(target.strip())
    except ValueError:
        host = r.world.host(target.split(".")[0])
        name = f"{host.name}.{host.domain}" if host is not None and host.domain else target
        shown = f"{name} [{address}]"
    r.out("", f"Pinging {shown} with {size} bytes of data:")
    received = 0
    for echo in range(count):
        if echo:
            with r.sim.unlocked():
                r.sim.clock.sleep(1)
        ok = reachability.probe(r.world, r.now(), r.host, address,
                                offline=r.sim.offline_hosts()).ping  # fmt: skip
        if ok:
            received += 1
            r.out(f"Reply from {address}: bytes={size} time<1ms TTL={_ttl(r, address)}")
        else:
            with r.sim.unlocked():
                r.sim.clock.sleep(timeout / 1000)
            r.out("Request timed out.")
    lost = count - received
    r.out("", f"Ping statistics for {address}:",
          f"    Packets: Sent = {count}, Received = {received}, Lost = {lost} "
          f"({lost * 100 // count}% loss),")  # fmt: skip
    if received:
        r.out("Approximate round trip times in milli-seconds:",
              "    Minimum = 0ms, Maximum = 0ms, Average = 0ms")  # fmt: skip
    return 0 if received else 1
