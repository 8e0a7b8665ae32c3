"""A fast decoder for CREATE_PIPELINE messages.

psrpcore deserializes every part of a CreatePipeline message (host info, merge enums, ...) into
PSObjects, which costs about 2 ms per command, the largest share of the simulator's time per
call. This module walks the CLIXML structure directly and leaves only the parameter values (and
pipeline input) to psrpcore's deserializer. The result is the same ``psrpcore.PowerShell``
object psrpcore builds; any unexpected shape raises :class:`ValueError` so the caller can fall
back to psrpcore's generic path.
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

from psrpcore import Command, PowerShell
from psrpcore.types._serializer import _deserialize_string, _Serializer


def _member(parent: ET.Element, name: str) -> ET.Element:
    for child in parent:
        if child.get("N") == name:
            return child
    raise ValueError(f"CreatePipeline: no member {name}")


def _ms(obj: ET.Element) -> ET.Element:
    ms = obj.find("MS")
    if ms is None:
        raise ValueError("CreatePipeline: object without extended members")
    return ms


def _items(obj: ET.Element) -> list[ET.Element]:
    lst = obj.find("LST")
    if lst is None:
        raise ValueError("CreatePipeline: list expected")
    return list(lst)


def _bool(parent: ET.Element, name: str) -> bool:
    element = _member(parent, name)
    if element.tag != "B":
        raise ValueError(f"CreatePipeline: {name} is not a boolean")
    return (element.text or "").strip().lower() == "true"


def _string(element: ET.Element) -> str:
    """A CLIXML ``<S>`` value, its ``_xHHHH_`` escapes (newlines, surrogates...) decoded."""
    if element.tag != "S":
        raise ValueError(f"CreatePipeline: {element.get('N')} is not a string")
    return _deserialize_string(element.text or "")


def _text(parent: ET.Element, name: str) -> str:
    return _string(_member(parent, name))


def _type_names(root: ET.Element) -> dict[str, list[str]]:
    """Every ``<TN>`` of the document: values may refer to types first named elsewhere."""
    return {tn.get("RefId", ""): [t.text or "" for t in tn] for tn in root.iter("TN")}


def _statements(powershell: ET.Element) -> list[list[ET.Element]]:
    extra = _member(powershell, "ExtraCmds")
    if extra.tag == "Obj":
        return [_items(_member(_ms(stmt), "Cmds")) for stmt in _items(extra)]
    return [_items(_member(powershell, "Cmds"))]


def _command(element: ET.Element, values: _Serializer) -> Command:
    members = _ms(element)
    local_scope = _member(members, "UseLocalScope")
    cmd = Command(
        _text(members, "Cmd"),
        is_script=_bool(members, "IsScript"),
        use_local_scope=None if local_scope.tag == "Nil" else local_scope.text == "true",
    )
    for arg in _items(_member(members, "Args")):
        arg_members = _ms(arg)
        name = _member(arg_members, "N")
        value = values.deserialize(_member(arg_members, "V"))
        cmd.parameters.append((None if name.tag == "Nil" else _string(name), value))
    return cmd


def parse_create_pipeline(data: bytes, cipher: Any, **kwargs: Any) -> PowerShell:
    """The ``psrpcore.PowerShell`` of a CREATE_PIPELINE message body (CLIXML bytes)."""
    root = ET.fromstring(data)
    members = _ms(root)
    powershell = _ms(_member(members, "PowerShell"))
    values = _Serializer(cipher, **kwargs)
    values._tn_ref_map = _type_names(root)
    pipeline = PowerShell(no_input=_bool(members, "NoInput"))
    for statement in _statements(powershell):
        if not statement:
            continue
        pipeline.commands.extend(_command(cmd, values) for cmd in statement)
        pipeline.commands[-1].end_of_statement = True
    if not pipeline.commands:
        raise ValueError("CreatePipeline: no commands")
    return pipeline
