"""netsh: Windows Firewall rules (``advfirewall firewall``) and the RRAS NAT context.

Modelled forms:

- ``advfirewall firewall add rule name=N dir=in|out action=allow|block [protocol=tcp|udp|
  icmpv4|any] [localport=P] [enable=yes|no] [description=D]``: a new rule in the same store
  Get-NetFirewallRule reads (``Name`` a new ``{GUID}``, ``DisplayName`` N; netsh allows several
  rules with one name);
- ``advfirewall firewall set rule name=N|group=G [dir=in|out] new [enable=yes|no]
  [localport=P] [action=allow|block] [protocol=...]``;
- ``advfirewall firewall delete rule name=N [dir=in|out] [protocol=...] [localport=P]``;
- ``advfirewall firewall show rule name=N|all [dir=in|out]``.

``name=`` matches the rule's DisplayName (the name netsh shows as "Rule Name"), ``group=`` its
group; ``all`` matches every rule. No matching rule: "No rules match the specified criteria."
and exit code 1.

- ``routing ...`` (``routing ip nat install`` etc.) on a host without the Routing role service:
  netsh has no ``routing`` context there and answers "The following command was not found:
  routing ...", exit code 1. With Routing installed the host's RRAS is not modelled.
"""

from __future__ import annotations

import uuid

from simulator.native.run import NativeRun, NotModelled
from simulator.world import FirewallRule

NO_MATCH = "No rules match the specified criteria."
PROTOCOLS = {"tcp": "TCP", "udp": "UDP", "icmpv4": "ICMPv4", "any": "Any"}
DIRECTIONS = {"in": "Inbound", "out": "Outbound"}
ACTIONS = {"allow": "Allow", "block": "Block"}
YES_NO = {"yes": True, "no": False}


def _pairs(words: list[str], allowed: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        key = key.strip().lower()
        if not sep or key not in allowed or key in out:
            raise NotModelled(f"'{word}' is not a modelled argument here")
        out[key] = value.strip().strip('"')
    return out


def _choice(table: dict[str, str], value: str, key: str) -> str:
    found = table.get(value.lower())
    if found is None:
        raise NotModelled(f"{key}={value} is not modelled")
    return found


def _port(value: str, protocol: str) -> str:
    if protocol not in ("TCP", "UDP"):
        raise NotModelled("localport= needs protocol=tcp or protocol=udp")
    parts = [p.strip() for p in value.split(",")]
    if value.lower() != "any" and not all(p.isdigit() and 0 < int(p) < 65536 for p in parts):
        raise NotModelled(f"localport={value} is not modelled")
    return "Any" if value.lower() == "any" else ",".join(parts)


def run(r: NativeRun) -> int:
    words = list(r.args)
    low = [w.lower() for w in words]
    if low[:1] == ["routing"]:
        if r.host.has_feature("Routing"):
            raise NotModelled("the host's RRAS (netsh routing) is not modelled")
        r.out(f"The following command was not found: {' '.join(words)}.")
        return 1
    if low[:2] != ["advfirewall", "firewall"] or len(low) < 4 or low[3] != "rule":
        raise NotModelled("modelled: netsh advfirewall firewall add|set|delete|show rule ...")
    verb, rest = low[2], words[4:]
    if verb == "add":
        return _add(r, rest)
    if verb == "set":
        return _set(r, rest)
    if verb == "delete":
        return _delete(r, rest)
    if verb == "show":
        return _show(r, rest)
    raise NotModelled(f"netsh advfirewall firewall {verb} is not modelled")


def _matching(r: NativeRun, where: dict[str, str]) -> list[FirewallRule]:
    rules = list(r.host.firewall.values())
    name, group = where.get("name"), where.get("group")
    if name is not None and name.lower() != "all":
        rules = [x for x in rules if x.display_name.lower() == name.lower()]
    if group is not None:
        rules = [x for x in rules if x.group.lower() == group.lower()]
    if "dir" in where:
        rules = [x for x in rules if x.direction == _choice(DIRECTIONS, where["dir"], "dir")]
    if "protocol" in where:
        want = _choice(PROTOCOLS, where["protocol"], "protocol")
        rules = [x for x in rules if x.protocol.lower() == want.lower()]
    if "localport" in where:
        rules = [x for x in rules if x.local_port.lower() == where["localport"].lower()]
    return rules


def _add(r: NativeRun, words: list[str]) -> int:
    spec = _pairs(words, {"name", "dir", "action", "protocol", "localport", "enable",
                          "description"})  # fmt: skip
    if not {"name", "dir", "action"} <= set(spec) or spec["name"].lower() == "all":
        raise NotModelled("add rule needs name= (not all), dir= and action=")
    protocol = _choice(PROTOCOLS, spec.get("protocol", "any"), "protocol")
    rule = FirewallRule(
        name="{" + str(uuid.uuid4()) + "}",
        display_name=spec["name"],
        enabled=YES_NO.get(spec.get("enable", "yes").lower(), True),
        direction=_choice(DIRECTIONS, spec["dir"], "dir"),
        action=_choice(ACTIONS, spec["action"], "action"),
        protocol=protocol,
        local_port=_port(spec["localport"], protocol) if "localport" in spec else "Any",
    )
    r.host.firewall[rule.name] = rule
    r.out("Ok.", "")
    return 0


def _set(r: NativeRun, words: list[str]) -> int:
    low = [w.lower() for w in words]
    if "new" not in low:
        raise NotModelled("set rule without 'new' changes nothing; not modelled")
    cut = low.index("new")
    where = _pairs(words[:cut], {"name", "group", "dir", "protocol", "localport"})
    if ("name" in where) == ("group" in where):
        raise NotModelled("set rule needs exactly one of name= and group=")
    new = _pairs(words[cut + 1 :], {"enable", "localport", "action", "protocol"})
    if not new:
        raise NotModelled("set rule ... new without a value is not modelled")
    if "group" in where and set(new) != {"enable"}:
        raise NotModelled("a group of rules can only be enabled or disabled")
    rules = _matching(r, where)
    if not rules:
        r.out(NO_MATCH)
        return 1
    for rule in rules:
        if "enable" in new:
            if new["enable"].lower() not in YES_NO:
                raise NotModelled(f"enable={new['enable']} is not modelled")
            rule.enabled = YES_NO[new["enable"].lower()]
        if "action" in new:
            rule.action = _choice(ACTIONS, new["action"], "action")
        if "protocol" in new:
            rule.protocol = _choice(PROTOCOLS, new["protocol"], "protocol")
        if "localport" in new:
            rule.local_port = _port(new["localport"], rule.protocol)
    r.out("", f"Updated {len(rules)} rule(s).", "Ok.", "")
    return 0


def _delete(r: NativeRun, words: list[str]) -> int:
    where = _pairs(words, {"name", "dir", "protocol", "localport"})
    if "name" not in where:
        raise NotModelled("delete rule needs name=")
    rules = _matching(r, where)
    if not rules:
        r.out(NO_MATCH)
        return 1
    for rule in rules:
        r.host.firewall.pop(rule.name, None)
    r.out("", f"Deleted {len(rules)} rule(s).", "Ok.", "")
    return 0


def _show(r: NativeRun, words: list[str]) -> int:
    where = _pairs(words, {"name", "dir"})
    if "name" not in where:
        raise NotModelled("show rule needs name=")
    rules = _matching(r, where)
    if not rules:
        r.out(NO_MATCH)
        return 1
    for rule in rules:
        field = "{:<38}{}".format
        ports = [field("LocalPort:", rule.local_port), field("RemotePort:", "Any")]
        if rule.protocol not in ("TCP", "UDP"):
            ports = []
        r.out(
            "",
            field("Rule Name:", rule.display_name),
            "-" * 70,
            field("Enabled:", "Yes" if rule.enabled else "No"),
            field("Direction:", "In" if rule.direction == "Inbound" else "Out"),
            field("Profiles:", "Domain,Private,Public"),
            field("Grouping:", rule.group),
            field("LocalIP:", "Any"),
            field("RemoteIP:", "Any"),
            field("Protocol:", rule.protocol),
            *ports,
            field("Edge traversal:", "No"),
            field("Action:", rule.action),
        )
    r.out("Ok.", "")
    return 0
