"""Output objects shaped like the real .NET types: type names, adapted properties, enums.

pypsrp 0.9 exposes a real .NET object's properties as ``adapted_properties`` and an enum as a
GenericComplexObject whose ``str()`` is the member name, so objects are built with psrpcore
``PSType(..., rehydrate=False)`` classes (never registered for rehydration: the type registry is
process-global and a psrpcore-based client in the same process must not get our classes).
Sizes go out as Int64/UInt64 like the real properties.
"""

from __future__ import annotations

from typing import Any

from psrpcore.types import (
    PSEnumBase,
    PSGuid,
    PSInt64,
    PSNoteProperty,
    PSObject,
    PSType,
    PSUInt,
    PSUInt16,
    PSUInt64,
)

HV = "Microsoft.HyperV.PowerShell."
SM = "Microsoft.Windows.ServerManager.Commands."
CIM = "Microsoft.Management.Infrastructure.CimInstance"


def _enum(type_name: str, members: list[str] | dict[str, int]) -> Any:
    """A PSEnumBase subclass for a .NET enum; a list means values 0, 1, 2 ..."""
    if isinstance(members, dict):
        pairs = list(members.items())
    else:
        pairs = [(name, value) for value, name in enumerate(members)]
    factory: Any = PSEnumBase
    cls = factory(type_name.rsplit(".", 1)[-1], pairs)
    decorate: Any = PSType([type_name], rehydrate=False)
    return decorate(cls)


_CRITICAL = [
    "Running",
    "Off",
    "Stopping",
    "Saved",
    "Paused",
    "Starting",
    "Reset",
    "Saving",
    "Pausing",
    "Resuming",
    "FastSaved",
    "FastSaving",
]
VMState = _enum(
    HV + "VMState",
    {
        "Other": 1,
        "Running": 2,
        "Off": 3,
        "Stopping": 4,
        "Saved": 6,
        "Paused": 9,
        "Starting": 10,
        "Reset": 11,
        "Saving": 32773,
        "Pausing": 32776,
        "Resuming": 32777,
        "FastSaved": 32779,
        "FastSaving": 32780,
        "ForceShutdown": 32781,
        "ForceReboot": 32782,
    }
    | {f"{name}Critical": 32783 + i for i, name in enumerate(_CRITICAL)},
)
VMHeartbeatStatus = _enum(
    HV + "VMHeartbeatStatus",
    [
        "Unknown",
        "Disabled",
        "NoContact",
        "Error",
        "LostCommunication",
        "OkApplicationsUnknown",
        "OkApplicationsHealthy",
        "OkApplicationsCritical",
        "Paused",
    ],
)
OnOffState = _enum(HV + "OnOffState", ["On", "Off"])
VMSwitchType = _enum(HV + "VMSwitchType", ["Private", "Internal", "External"])
VMReplicationState = _enum(
    HV + "VMReplicationState",
    [
        "Disabled",
        "ReadyForInitialReplication",
        "InitialReplicationInProgress",
        "WaitingForInitialReplication",
        "Replicating",
        "PreparedForFailover",
        "FailedOverWaitingCompletion",
        "FailedOver",
        "Suspended",
        "Error",
        "WaitingForStartResynchronize",
        "Resynchronizing",
        "ResynchronizeSuspended",
        "RecoveryInProgress",
        "FailbackInProgress",
        "FailbackComplete",
        "WaitingForUpdateCompletion",
        "UpdateError",
        "WaitingForRepurposeCompletion",
        "PreparedForSyncReplication",
        "PreparedForGroupReverseReplication",
        "FiredrillInProgress",
    ],
)
VMReplicationHealthState = _enum(
    HV + "VMReplicationHealthState", ["NotApplicable", "Normal", "Warning", "Critical"]
)
VMReplicationMode = _enum(
    HV + "VMReplicationMode", ["None", "Primary", "Replica", "TestReplica", "ExtendedReplica"]
)
VMReplicationRelationshipType = _enum(HV + "VMReplicationRelationshipType", ["Simple", "Extended"])
MigrationAuthenticationType = _enum(HV + "MigrationAuthenticationType", ["CredSSP", "Kerberos"])
VMMigrationPerformance = _enum(HV + "VMMigrationPerformance", ["TCPIP", "Compression", "SMB"])
RecoveryAuthenticationType = _enum(
    HV + "RecoveryAuthenticationType",
    {"Kerberos": 1, "Certificate": 2, "CertificateAndKerberos": 3},
)
ReplicationAuthenticationType = _enum(
    HV + "ReplicationAuthenticationType", {"Kerberos": 1, "Certificate": 2}
)
ControllerType = _enum(HV + "ControllerType", ["IDE", "SCSI"])
VhdType = _enum(
    "Microsoft.Vhd.PowerShell.VhdType", {"Unknown": 0, "Fixed": 2, "Dynamic": 3, "Differencing": 4}
)
VhdFormat = _enum("Microsoft.Vhd.PowerShell.VhdFormat", {"Unknown": 0, "VHD": 2, "VHDX": 3})
SnapshotType = _enum(
    HV + "SnapshotType",
    [
        "Standard",
        "Recovery",
        "Planned",
        "Missing",
        "Replica",
        "AppConsistentReplica",
        "SyncedReplica",
    ],
)
CheckpointType = _enum(
    HV + "CheckpointType", {"Disabled": 2, "Production": 3, "ProductionOnly": 4, "Standard": 5}
)
StopAction = _enum(HV + "StopAction", {"TurnOff": 2, "Save": 3, "ShutDown": 4})
StartAction = _enum(HV + "StartAction", {"Nothing": 2, "StartIfRunning": 3, "Start": 4})
InstallState = _enum(
    SM + "InstallState",
    {"Available": 0, "Installed": 1, "InstallPending": 2, "Removed": 3, "UninstallPending": 4},
)  # [UNCONF] numeric values; compare by name
RestartState = _enum(SM + "RestartState", ["No", "Yes", "Maybe"])
FeatureOperationExitCode = _enum(
    SM + "FeatureOperationExitCode",
    {"Success": 0, "Failed": 1, "NoChangeNeeded": 1003, "SuccessRestartRequired": 3010},
)  # [UNCONF] numeric values; compare by name
ServiceControllerStatus = _enum(
    "System.ServiceProcess.ServiceControllerStatus",
    {
        "Stopped": 1,
        "StartPending": 2,
        "StopPending": 3,
        "Running": 4,
        "ContinuePending": 5,
        "PausePending": 6,
        "Paused": 7,
    },
)
ServiceStartMode = _enum(
    "System.ServiceProcess.ServiceStartMode",
    {"Boot": 0, "System": 1, "Automatic": 2, "Manual": 3, "Disabled": 4},
)


def member(enum_cls: Any, name: str) -> Any:
    """The enum member called ``name`` (case-insensitive)."""
    for item in enum_cls:
        if item.name.lower() == str(name).lower():
            return item
    raise KeyError(f"{name} is not a member of {enum_cls.__name__}")


# ---------------------------------------------------------------- object builder

_CLASSES: dict[tuple[tuple[str, ...], tuple[str, ...]], type[PSObject]] = {}


def ps_object(type_names: list[str], **props: Any) -> PSObject:
    """An object with these .NET type names (System.Object is appended) and adapted props."""
    names = tuple([*type_names, "System.Object"])
    key = (names, tuple(props))
    cls = _CLASSES.get(key)
    if cls is None:
        decorate = PSType(
            list(names),
            adapted_properties=[PSNoteProperty(name) for name in props],
            skip_inheritance=True,
            rehydrate=False,
        )
        cls = decorate(type(names[0].rsplit(".", 1)[-1].replace("#", "_"), (PSObject,), {}))
        _CLASSES[key] = cls
    return cls(**props)


def cim_instance(namespace: str, class_chain: list[str], **props: Any) -> PSObject:
    """A CimInstance as Get-CimInstance emits it (type name per class in the hierarchy)."""
    names = [f"{CIM}#{namespace}/{cls}" for cls in class_chain] + [CIM]
    return ps_object(names, **props)


def i64(value: int) -> PSInt64:
    return PSInt64(value)


def u64(value: int) -> PSUInt64:
    return PSUInt64(value)


def u16(value: int) -> PSUInt16:
    return PSUInt16(value)


def u32(value: int) -> PSUInt:
    return PSUInt(value)


def guid(value: str) -> PSGuid:
    return PSGuid(value)


# ---------------------------------------------------------------- reading objects back


def prop(obj: Any, name: str, default: Any = None) -> Any:
    """A property of an object the client sent back (psrpcore PSObject, dict, or plain)."""
    if obj is None:
        return default
    if isinstance(obj, dict):
        low = name.lower()
        return next((v for k, v in obj.items() if str(k).lower() == low), default)
    meta = getattr(obj, "PSObject", None)
    if meta is not None:
        for info in [*meta.adapted_properties, *meta.extended_properties]:
            if info.name.lower() == name.lower():
                try:
                    return obj[info.name]
                except (KeyError, AttributeError):
                    return default
        return default
    return getattr(obj, name, default)


def type_names(obj: Any) -> list[str]:
    meta = getattr(obj, "PSObject", None)
    return [t.removeprefix("Deserialized.") for t in (meta.type_names if meta else [])]
