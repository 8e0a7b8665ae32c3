"""reg: query, add and delete registry values of the host (``Host.registry``).

Modelled forms (root ``HKLM``/``HKEY_LOCAL_MACHINE`` only):

- ``reg query KEY [/v NAME]``;
- ``reg add KEY [/v NAME [/t REG_SZ|REG_EXPAND_SZ|REG_DWORD|REG_QWORD|REG_MULTI_SZ] [/d DATA]]
  [/f]`` (without ``/f`` only when the value does not exist yet: reg would ask to overwrite);
- ``reg delete KEY [/v NAME] /f``.

Keys that show the world are read-only views of it: ``...\\Windows NT\\CurrentVersion``
(ProductName, CurrentBuild, CurrentBuildNumber), ``...\\ComputerName\\ComputerName``,
``...\\Services\\Tcpip\\Parameters`` (Hostname, Domain) and ``...\\Component Based
Servicing\\RebootPending``, which exists only while a reboot is pending (features, a domain
join). Other keys under ``HKLM\\SOFTWARE\\Microsoft`` and ``HKLM\\SYSTEM`` that were never
written are not modelled (Windows has them, the fleet does not know their values); any other
key that was never written does not exist. Exit codes: 0; 1 with "ERROR: ..." on standard
error.
"""

from __future__ import annotations

from typing import Any

from simulator.native.run import NativeRun, NotModelled
from simulator.world import Host

ROOT = "HKEY_LOCAL_MACHINE"
CURRENT_VERSION = ROOT + "\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion"
COMPUTER_NAME = ROOT + "\\SYSTEM\\CurrentControlSet\\Control\\ComputerName\\ComputerName"
TCPIP = ROOT + "\\SYSTEM\\CurrentControlSet\\Services\\Tcpip\\Parameters"
REBOOT_PENDING = (ROOT + "\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Component Based "
                  "Servicing\\RebootPending")  # fmt: skip
UNKNOWN_TREES = (ROOT + "\\SOFTWARE\\Microsoft", ROOT + "\\SYSTEM")
NOT_FOUND = "ERROR: The system was unable to find the specified registry key or value."
DONE = "The operation completed successfully."
TYPES = {"REG_SZ", "REG_EXPAND_SZ", "REG_DWORD", "REG_QWORD", "REG_MULTI_SZ"}


def _key(text: str) -> str:
    raw = text.strip().strip("\\")
    root, _, rest = raw.partition("\\")
    if root.upper() not in ("HKLM", ROOT):
        raise NotModelled("only HKLM keys are modelled")
    return ROOT + ("\\" + rest if rest else "")


def _derived(host: Host) -> dict[str, dict[str, list[Any]]]:
    build = host.os_version.split(".")[-1]
    out: dict[str, dict[str, list[Any]]] = {
        CURRENT_VERSION: {
            "ProductName": ["REG_SZ", host.os_caption.removeprefix("Microsoft ")],
            "CurrentBuild": ["REG_SZ", build],
            "CurrentBuildNumber": ["REG_SZ", build],
        },
        COMPUTER_NAME: {"ComputerName": ["REG_SZ", host.name.upper()]},
        TCPIP: {"Hostname": ["REG_SZ", host.name.upper()], "Domain": ["REG_SZ", host.domain or ""]},
    }
    if host.pending_reboot:
        out[REBOOT_PENDING] = {}
    return out


def _lookup(table: dict[str, Any], key: str) -> str | None:
    return next((k for k in table if k.lower() == key.lower()), None)


def _under(key: str, tree: str) -> bool:
    return key.lower() == tree.lower() or key.lower().startswith(tree.lower() + "\\")


def _ancestor_of_view(key: str) -> bool:
    views = (CURRENT_VERSION, COMPUTER_NAME, TCPIP, REBOOT_PENDING)
    return any(_under(v, key) and v.lower() != key.lower() for v in views)


def _show(kind: str, data: Any) -> str:
    if kind in ("REG_DWORD", "REG_QWORD"):
        return f"0x{int(data):x}"
    if kind == "REG_MULTI_SZ":
        return "\\0".join(str(d) for d in data)
    return str(data)


def _value_line(name: str, kind: str, data: Any) -> str:
    return f"    {name}    {kind}    {_show(kind, data)}"


def run(r: NativeRun) -> int:
    if not r.args:
        raise NotModelled("reg without an operation")
    op, args = r.args[0].lower(), r.args[1:]
    if op not in ("query", "add", "delete") or not args:
        raise NotModelled("modelled: reg query|add|delete HKLM\\KEY ...")
    key, opts = _key(args[0]), _options(args[1:], op)
    if op == "query":
        return _query(r, key, opts)
    if _lookup(_derived(r.host), key) or (_ancestor_of_view(key) and op == "delete"):
        raise NotModelled(f"{key} shows the simulated world; changing it is not modelled")
    if op == "add":
        return _add(r, key, opts)
    return _delete(r, key, opts)


def _options(words: list[str], op: str) -> dict[str, str]:
    allowed = {"query": {"/v"}, "add": {"/v", "/t", "/d", "/f"}, "delete": {"/v", "/f"}}[op]
    out: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i].lower()
        if word not in allowed or word in out:
            raise NotModelled(f"'{words[i]}' is not modelled for reg {op}")
        if word == "/f":
            out[word] = ""
            i += 1
            continue
        if i + 1 >= len(words):
            raise NotModelled(f"{words[i]} without a value")
        out[word] = words[i + 1]
        i += 2
    return out


def _query(r: NativeRun, key: str, opts: dict[str, str]) -> int:
    stored, derived = r.host.registry, _derived(r.host)
    found = _lookup(derived, key) or _lookup(stored, key)
    if found is None:
        unknown = any(_under(key, t) for t in UNKNOWN_TREES) and not _under(key, REBOOT_PENDING)
        top = key.lower() in (ROOT.lower(), f"{ROOT}\\software".lower())
        if top or unknown or _ancestor_of_view(key):
            raise NotModelled(f"{key} is not modelled")
        if not any(_under(k, key) for k in stored):
            r.err(NOT_FOUND)
            return 1
        stored = {**stored, key: {}}  # a key that exists only as the parent of written ones
        found = key
    values = derived.get(found) if found in derived else stored[found]
    assert values is not None
    if "/v" in opts:
        name = _lookup(values, opts["/v"])
        if name is None:
            r.err(NOT_FOUND)
            return 1
        r.out("", key, _value_line(name, *values[name]), "")
        return 0
    lines = ["", key, *(_value_line(n, *v) for n, v in values.items())]
    prefix = found.lower() + "\\"
    below = [k[len(prefix) :] for k in [*stored, *derived] if k.lower().startswith(prefix)]
    children = sorted({f"{key}\\{k.split(chr(92))[0]}" for k in below})
    lines += ["", *children] if children else []
    r.out(*lines, "")
    return 0


def _data(kind: str, text: str) -> Any:
    if kind in ("REG_DWORD", "REG_QWORD"):
        try:
            number = int(text, 16) if text.lower().startswith("0x") else int(text)
        except ValueError:
            raise NotModelled(f"/d {text} is not a number") from None
        if not 0 <= number < (1 << (32 if kind == "REG_DWORD" else 64)):
            raise NotModelled(f"/d {text} is out of range")
        return number
    if kind == "REG_MULTI_SZ":
        return text.split("\\0")
    return text


def _add(r: NativeRun, key: str, opts: dict[str, str]) -> int:
    stored = r.host.registry
    found = _lookup(stored, key) or key
    values = stored.setdefault(found, {})
    if "/v" not in opts:
        if "/t" in opts or "/d" in opts:
            raise NotModelled("the default value (/ve) and /t or /d without /v are not modelled")
        r.out(DONE, "")
        return 0
    kind = opts.get("/t", "REG_SZ").upper()
    if kind not in TYPES:
        raise NotModelled(f"/t {opts['/t']} is not modelled")
    name = _lookup(values, opts["/v"])
    if name is not None and "/f" not in opts:
        raise NotModelled("overwriting without /f asks for confirmation; not modelled")
    values[name or opts["/v"]] = [kind, _data(kind, opts.get("/d", "0" if "WORD" in kind else ""))]
    r.out(DONE, "")
    return 0


def _delete(r: NativeRun, key: str, opts: dict[str, str]) -> int:
    if "/f" not in opts:
        raise NotModelled("reg delete without /f asks for confirmation; not modelled")
    stored = r.host.registry
    found = _lookup(stored, key)
    below = [k for k in stored if _under(k, key)]
    if found is None and ("/v" in opts or not below):
        r.err(NOT_FOUND)
        return 1
    if "/v" in opts:
        assert found is not None
        name = _lookup(stored[found], opts["/v"])
        if name is None:
            r.err(NOT_FOUND)
            return 1
        del stored[found][name]
    else:
        for k in below:
            del stored[k]
    r.out(DONE, "")
    return 0
