"""Cmdlet catalogue and parameter binder: real cmdlets, real Windows PowerShell 5.1 texts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hvlab.powershell.catalog import (
    PARAMETER_BINDING_EXCEPTION,
    PARAMETER_VALIDATION_EXCEPTION,
    BindingError,
    Bound,
    Catalog,
    Kind,
    ParameterInfo,
)

CATALOG = Catalog.load()
DATA_FILE = Path(__file__).resolve().parents[2] / "hvlab" / "powershell" / "data" / "cmdlets.json"


def bind(name: str, params: Any, **kwargs: bool) -> Bound:
    return CATALOG.bind(name, params, **kwargs)


def error_of(name: str, params: Any, **kwargs: bool) -> BindingError:
    with pytest.raises(BindingError) as caught:
        CATALOG.bind(name, params, **kwargs)
    return caught.value


# --------------------------------------------------------------------------------------------
# Catalogue look-ups
# --------------------------------------------------------------------------------------------


def test_load_is_cached_and_accepts_an_explicit_path() -> None:
    assert Catalog.load() is CATALOG
    explicit = Catalog.load(DATA_FILE)
    assert explicit is Catalog.load(DATA_FILE)
    assert len(explicit) == len(CATALOG) == 1010


def test_lookups_are_case_insensitive_and_resolve_aliases() -> None:
    assert CATALOG.exists("new-vm") and "NEW-VM" in CATALOG
    assert CATALOG.canonical("nEw-Vm") == "New-VM"
    assert CATALOG.canonical("Restore-VMCheckpoint") == "Restore-VMSnapshot"
    assert CATALOG.canonical("get-vmcheckpoint") == "Get-VMSnapshot"
    assert CATALOG.module_of("Get-VMCheckpoint") == "Hyper-V"
    assert CATALOG.module_of("Set-ADComputer") == "ActiveDirectory"
    assert CATALOG.module_of("Install-WindowsFeature") == "ServerManager"
    assert CATALOG.module_of("No-SuchThing") is None
    assert not CATALOG.exists("No-SuchThing")
    assert CATALOG.canonical("No-SuchThing") is None


def test_unknown_cmdlet_is_command_not_found() -> None:
    error = error_of("Get-Bogus", {})
    assert error.message == (
        "The term 'Get-Bogus' is not recognized as the name of a cmdlet, function, script file, "
        "or operable program. Check the spelling of the name, or if a path was included, verify "
        "that the path is correct and try again."
    )
    assert error.error_id == "CommandNotFoundException"
    assert error.category == "ObjectNotFound"
    assert error.exception_type == "System.Management.Automation.CommandNotFoundException"
    assert error.target_object == "Get-Bogus"


# --------------------------------------------------------------------------------------------
# Parameter names: exact, alias, prefix, ambiguity, unknown, duplicates, positional
# --------------------------------------------------------------------------------------------


def test_unknown_parameter() -> None:
    error = error_of("New-VM", {"Name": "dc1", "Bogus": 1})
    assert error.message == "A parameter cannot be found that matches parameter name 'Bogus'."
    assert error.error_id == "NamedParameterNotFound,Microsoft.HyperV.PowerShell.Commands.NewVM"
    assert error.category == "InvalidArgument"
    assert error.exception_type == PARAMETER_BINDING_EXCEPTION


def test_unknown_parameter_is_reported_after_the_other_arguments_were_bound() -> None:
    # PowerShell defers NamedParameterNotFound: a conversion error of a later argument wins.
    error = error_of("New-VM", [("Bogus", 1), ("Generation", "two")])
    assert (
        error.error_id
        == "CannotConvertArgumentNoMessage,Microsoft.HyperV.PowerShell.Commands.NewVM"
    )


def test_prefixes_and_aliases_resolve_case_insensitively() -> None:
    bound = bind("New-VM", {"-comp": "hv1", "vmname": "dc1", "MEMORYSTARTUP": 1024})
    assert bound.params == {"ComputerName": ["hv1"], "Name": "dc1", "MemoryStartupBytes": 1024}
    assert bound.was_given("computername") and bound.was_given("VMName")
    assert not bound.was_given("Path")
    assert bound.get("vmname") == "dc1"


def test_declared_parameter_beats_common_parameter_on_a_shared_prefix() -> None:
    assert bind("New-VM", {"Name": "a", "Ver": "10.0"}).params["Version"] == "10.0"
    assert bind("New-VM", {"Name": "a", "Verb": None}).params["Verbose"] is True


def test_common_parameters_and_their_aliases_are_always_accepted() -> None:
    bound = bind(
        "Test-NetConnection",
        {"ComputerName": "dc1", "ea": "stop", "WarningAction": "silentlycontinue", "ov": "x"},
    )
    assert bound.params["ErrorAction"] == "Stop"
    assert bound.params["WarningAction"] == "SilentlyContinue"
    assert bound.params["OutVariable"] == "x"


def test_whatif_and_confirm_only_where_shouldprocess_is_supported() -> None:
    """Get-VM does not support ShouldProcess: -WhatIf/-Confirm are unknown parameters there,
    with the .NET command type in the FullyQualifiedErrorId."""
    assert bind("Stop-VM", {"Name": "a", "wi": None}).params["WhatIf"] is True
    assert bind("Remove-VM", {"Name": "a", "Confirm": False}).params["Confirm"] is False
    for name in ("WhatIf", "Confirm", "wi"):
        error = error_of("Get-VM", {"Name": "a", name: None})
        assert error.message == f"A parameter cannot be found that matches parameter name '{name}'."
        assert error.error_id == "NamedParameterNotFound,Microsoft.HyperV.PowerShell.Commands.GetVM"
        assert error.exception_type == "System.Management.Automation.ParameterBindingException"
    assert Catalog.load().cmdlet("Get-VM").supports_should_process is False


def test_ambiguous_prefix() -> None:
    error = error_of("New-VM", {"C": "x", "Name": "a"})
    assert error.message == (
        "Parameter cannot be processed because the parameter name 'C' is ambiguous. "
        "Possible matches include: -CimSession -ComputerName -Credential -Confirm."
    )
    assert error.error_id == "AmbiguousParameter,Microsoft.HyperV.PowerShell.Commands.NewVM"
    assert error.category == "InvalidArgument"


def test_parameter_given_twice_via_alias() -> None:
    error = error_of("Stop-VM", [("Name", "a"), ("VMName", "b")])
    assert error.message == (
        "Cannot bind parameter because parameter 'VMName' is specified more than once. To "
        "provide multiple values to parameters that can accept multiple values, use the array "
        'syntax. For example, "-parameter value1,value2,value3".'
    )
    assert error.error_id == "ParameterAlreadyBound,Microsoft.HyperV.PowerShell.Commands.StopVM"


def test_positional_arguments() -> None:
    error = error_of("Stop-VM", [(None, "dc1"), (None, "dc2")])
    assert error.message == "A positional parameter cannot be found that accepts argument 'dc2'."
    assert error.error_id == (
        "PositionalParameterNotFound,Microsoft.HyperV.PowerShell.Commands.StopVM"
    )
    bound = bind("Stop-VM", [(None, "dc1"), ("Name", "dc1")], positional_ok=True)
    assert bound.positional == ("dc1",)


def test_positional_arguments_bind_by_position() -> None:
    """`Get-VM x` binds -Name (position 0 of set Name); a string never binds the object-typed
    -ClusterObject/-VM; positions are ordinals and narrow the sets as they bind."""
    bound = bind("Get-VM", [(None, "x")])
    assert (bound.parameter_set, bound.params) == ("Name", {"Name": ["x"]})
    bound = bind("Restore-VMSnapshot", [(None, "base"), (None, "vm1")])
    assert bound.params == {"Name": "base", "VMName": "vm1"}
    assert bind("Get-SmbShare", [(None, "smb")]).params == {"Name": ["smb"]}  # position 1
    bound = bind("Remove-VM", [(None, "x"), ("Force", None)])
    assert (bound.parameter_set, bound.params["Name"]) == ("Name", ["x"])
    bound = bind("Remove-VMSnapshot", [("VMName", "a"), (None, "b")])
    assert bound.params == {"VMName": ["a"], "Name": ["b"]}  # position 0 is bound by name
    bound = bind("New-VHD", [(None, "a.vhdx"), (None, "b.vhdx")])
    assert (bound.parameter_set, bound.params["ParentPath"]) == ("Differencing", "b.vhdx")


def test_a_positional_argument_of_the_wrong_type_is_a_conversion_error() -> None:
    error = error_of("New-VHD", [(None, "a.vhdx"), (None, "many"), ("Dynamic", None)])
    assert error.error_id == (
        "CannotConvertArgumentNoMessage,Microsoft.HyperV.PowerShell.Commands.NewVHD"
    )
    assert "'SizeBytes'" in error.message


# --------------------------------------------------------------------------------------------
# Parameter sets
# --------------------------------------------------------------------------------------------


def test_new_vm_parameter_sets() -> None:
    assert bind("New-VM", {"Name": "a", "VHDPath": "a.vhdx"}).parameter_set == "Existing VHD"
    new_vhd = bind("New-VM", {"Name": "a", "NewVHDPath": "a.vhdx", "NewVHDSizeBytes": 2**34})
    assert new_vhd.parameter_set == "New VHD"
    assert new_vhd.params["NewVHDSizeBytes"] == 2**34
    assert bind("New-VM", {"Name": "a"}).parameter_set == "No VHD"


def test_parameters_from_different_sets() -> None:
    error = error_of("New-VM", {"Name": "a", "VHDPath": "a.vhdx", "NewVHDPath": "b.vhdx"})
    assert error.message == "Parameter set cannot be resolved using the specified named parameters."
    assert error.error_id == "AmbiguousParameterSet,Microsoft.HyperV.PowerShell.Commands.NewVM"
    assert error.category == "InvalidArgument"


def test_missing_mandatory_parameters() -> None:
    error = error_of("New-VM", {"Name": "a", "NewVHDPath": "a.vhdx"})
    assert error.message == (
        "Cannot process command because of one or more missing mandatory parameters: "
        "NewVHDSizeBytes."
    )
    assert error.error_id == "MissingMandatoryParameter,Microsoft.HyperV.PowerShell.Commands.NewVM"
    several = error_of("Enable-VMReplication", {"VMName": "dc1", "ReplicaServerName": "hv2"})
    assert several.message.endswith("parameters: AuthenticationType ReplicaServerPort.")
    assert error_of("Set-ADComputer", {"Description": "x"}).message.endswith(": Identity.")


def test_sets_that_tie_are_reported() -> None:
    bound = bind("Move-VM", {"Name": "dc1", "DestinationHost": "hv2"})
    assert bound.parameter_set in ("NameSingleDestination", "NameMultipleDestinations")
    assert set(bound.candidate_sets) == {"NameSingleDestination", "NameMultipleDestinations"}
    assert bind("New-VM", {"Name": "a"}).candidate_sets == ()


def test_install_windows_feature_and_switches() -> None:
    bound = bind("Install-WindowsFeature", {"Name": "AD-Domain-Services", "IncludeAll": None})
    assert bound.parameter_set == "ComponentNamesAndRunningComputer"
    assert bound.params == {"Name": ["AD-Domain-Services"], "IncludeAllSubFeature": True}
    assert bind("Stop-VM", {"Name": "a", "Force": False}).params["Force"] is False


def test_pipeline_input_satisfies_object_parameters_only() -> None:
    assert bind("Stop-VM", {"Force": None}, pipeline_input=True).parameter_set == "VMObject"
    snapshot = bind("Get-VMCheckpoint", {}, pipeline_input=True)
    assert snapshot.cmdlet == "Get-VMSnapshot"
    assert "VMObject" in snapshot.candidate_sets
    # A String parameter is not taken from the pipeline under the documented rule.
    error = error_of("New-VMSwitch", {"SwitchType": "Internal"}, pipeline_input=True)
    assert error.message.endswith("missing mandatory parameters: Name.")


def test_alias_of_a_cmdlet_binds_the_real_cmdlet() -> None:
    bound = bind("Get-VMCheckpoint", {"VMName": "dc1"})
    assert (bound.cmdlet, bound.module, bound.parameter_set) == (
        "Get-VMSnapshot",
        "Hyper-V",
        "VMName",
    )
    assert error_of("Get-VMCheckpoint", {"Bogus": 1}).error_id == (
        "NamedParameterNotFound,Microsoft.HyperV.PowerShell.Commands.GetVMSnapshot"
    )


# --------------------------------------------------------------------------------------------
# Values: ValidateSet, enums, numbers, booleans, null/empty
# --------------------------------------------------------------------------------------------


def test_validate_set() -> None:
    error = error_of("Test-NetConnection", {"ComputerName": "a", "InformationLevel": "Loud"})
    assert error.message == (
        "Cannot validate argument on parameter 'InformationLevel'. The argument \"Loud\" does not "
        'belong to the set "Quiet,Detailed" specified by the ValidateSet attribute. Supply an '
        "argument that is in the set and then try the command again."
    )
    assert error.error_id == "ParameterArgumentValidationError,Test-NetConnection"
    assert error.category == "InvalidData"
    assert error.exception_type == PARAMETER_VALIDATION_EXCEPTION
    ok = bind("Test-NetConnection", {"ComputerName": "a", "InformationLevel": "qUIET"})
    assert ok.params["InformationLevel"] == "Quiet"


def test_validate_set_checks_every_array_element_and_numbers() -> None:
    ok = bind("Get-EventLog", {"LogName": "System", "EntryType": ["error", "WARNING"]})
    assert ok.params["EntryType"] == ["Error", "Warning"]
    error = error_of("Get-EventLog", {"LogName": "System", "EntryType": ["Error", "Fatal"]})
    assert 'The argument "Fatal" does not belong to the set' in error.message
    generation = error_of("New-VM", {"Name": "a", "Generation": 3})
    assert 'The argument "3" does not belong to the set "1,2"' in generation.message
    assert bind("New-VM", {"Name": "a", "Generation": "2"}).params["Generation"] == 2


def test_enum_parameter_with_an_unknown_name() -> None:
    error = error_of("New-VMSwitch", {"Name": "lab", "SwitchType": "Bogus"})
    assert error.message == (
        "Cannot bind parameter 'SwitchType'. Cannot convert value \"Bogus\" to type "
        '"Microsoft.HyperV.PowerShell.VMSwitchType". Error: "Unable to match the identifier '
        "name Bogus to a valid enumerator name. Specify one of the following enumerator names "
        'and try again:\r\nInternal, Private"'
    )
    assert (
        error.error_id
        == "CannotConvertArgumentNoMessage,Microsoft.HyperV.PowerShell.Commands.NewVMSwitch"
    )
    assert error.category == "InvalidArgument"


def test_enum_names_match_case_insensitively_and_by_unique_prefix() -> None:
    bound = bind("New-VMSwitch", {"Name": "lab", "SwitchType": "int"})
    assert (bound.parameter_set, bound.params["SwitchType"]) == ("SwitchType", "Internal")
    error = error_of("Get-VM", {"ErrorAction": "S"})
    assert (
        "The identifier name S cannot be processed because it is either too similar or identical "
        "to the following enumerator names: SilentlyContinue, Stop, Suspend."
    ) in error.message


def test_integer_overflow() -> None:
    base = {"VMName": "dc1", "ReplicaServerName": "hv2", "ReplicaServerPort": 80}
    base["AuthenticationType"] = "Kerberos"
    error = error_of("Enable-VMReplication", {**base, "ReplicationFrequencySec": 2**31})
    assert error.message == (
        "Cannot bind parameter 'ReplicationFrequencySec'. Cannot convert value \"2147483648\" to "
        'type "System.Int32". Error: "Value was either too large or too small for an Int32."'
    )
    assert (
        error.error_id
        == "CannotConvertArgumentNoMessage,Microsoft.HyperV.PowerShell.Commands.EnableVMReplication"
    )
    assert (
        bind("Enable-VMReplication", {**base, "RepFreq": "300"}).params["ReplicationFrequencySec"]
        == 300
    )
    int16 = error_of("New-VM", {"Name": "a", "Generation": 2**31})
    assert int16.message.endswith('"System.Int16". Error: "Value was either too large or too '
                                  'small for an Int16."')  # fmt: skip
    uint32 = error_of("Set-VMHost", {"MaximumStorageMigrations": -1})
    assert uint32.message.endswith('Error: "Value was either too large or too small for a UInt32."')


def test_size_suffixes_are_not_converted_from_strings() -> None:
    error = error_of("New-VM", {"Name": "a", "MemoryStartupBytes": "4GB"})
    assert error.message == (
        "Cannot bind parameter 'MemoryStartupBytes'. Cannot convert value \"4GB\" to type "
        '"System.Int64". Error: "Input string was not in a correct format."'
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [("4096", 4096), (" 12 ", 12), ("0x10", 16), ("1.5", 2), ("2.5", 2), ("1e3", 1000),
     ("1,024", 1024), (3.7, 4), (True, 1), ("", 0)],
)  # fmt: skip
def test_integer_conversions_follow_language_primitives(value: object, expected: int) -> None:
    bound = bind("Test-NetConnection", {"ComputerName": "a", "Port": value})
    assert bound.params["Port"] == expected


def test_boolean_parameters_reject_strings() -> None:
    error = error_of("Set-ADComputer", {"Identity": "PC1", "Enabled": "yes"})
    assert error.message == (
        "Cannot convert 'System.String' to the type 'System.Boolean' required by parameter "
        "'Enabled'. "
    )
    assert (
        error.error_id
        == "CannotConvertArgument,Microsoft.ActiveDirectory.Management.Commands.SetADComputer"
    )
    assert bind("Set-VMHost", {"NumaSpanningEnabled": 0}).params["NumaSpanningEnabled"] is False
    null = error_of("Set-VMHost", {"NumaSpanningEnabled": None})
    assert (
        null.message
        == "Cannot bind argument to parameter 'NumaSpanningEnabled' because it is null."
    )
    switch = error_of("Stop-VM", {"Name": "a", "Force": "yes"})
    assert "to the type 'System.Management.Automation.SwitchParameter'" in switch.message


def test_array_given_to_a_scalar_parameter() -> None:
    error = error_of("New-VM", {"Name": ["a", "b"]})
    assert error.message == (
        "Cannot convert 'System.Object[]' to the type 'System.String' required by parameter "
        "'Name'. Specified method is not supported."
    )
    assert error.error_id == "CannotConvertArgument,Microsoft.HyperV.PowerShell.Commands.NewVM"


def test_mandatory_parameters_reject_null_and_empty_values() -> None:
    empty = error_of("Stop-VM", {"Name": ""})
    assert (
        empty.message == "Cannot bind argument to parameter 'Name' because it is an empty string."
    )
    assert (
        empty.error_id
        == "ParameterArgumentValidationErrorEmptyStringNotAllowed,Microsoft.HyperV.PowerShell.Commands.StopVM"
    )
    assert empty.category == "InvalidData"
    array = error_of("Stop-VM", {"Name": []})
    assert array.message == "Cannot bind argument to parameter 'Name' because it is an empty array."
    null = error_of("New-VMSwitch", {"Name": None, "SwitchType": "Private"})
    assert null.message == "Cannot bind argument to parameter 'Name' because it is null."
    # Optional parameters accept them.
    assert bind("New-VM", {"Name": "a", "Path": ""}).params["Path"] == ""


def test_strings_accept_scalars_and_array_parameters_become_lists() -> None:
    bound = bind("New-VM", {"Name": 42, "ComputerName": ("a", "b")})
    assert bound.params == {"Name": "42", "ComputerName": ["a", "b"]}


# --------------------------------------------------------------------------------------------
# Property-based checks over the whole catalogue
# --------------------------------------------------------------------------------------------

NAMES = sorted(CATALOG)


def sample_value(param: ParameterInfo) -> Any:
    """A value every parameter of this type accepts."""
    kind = param.type.kind
    if kind is Kind.SWITCH:
        return None
    if kind is Kind.BOOLEAN:
        return True
    if param.accepted_values:
        return param.accepted_values[0]
    if kind is Kind.INTEGER:
        return 1
    if kind is Kind.FLOAT:
        return 1.5
    return "x"


@st.composite
def set_subsets(draw: st.DrawFn) -> tuple[str, str, dict[str, Any]]:
    name = draw(st.sampled_from(NAMES))
    info = CATALOG.cmdlet(name)
    set_name = draw(st.sampled_from(sorted(info.parameter_sets)))
    members = info.parameter_sets[set_name]
    optional = sorted(p for p, mandatory in members.items() if not mandatory)
    chosen = draw(st.lists(st.sampled_from(optional), unique=True) if optional else st.just([]))
    wanted = [p for p, mandatory in members.items() if mandatory] + chosen
    return name, set_name, {p: sample_value(info.parameters[p]) for p in wanted}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(set_subsets())
def test_any_subset_of_a_set_plus_its_mandatory_parameters_binds(
    case: tuple[str, str, dict[str, Any]],
) -> None:
    name, set_name, params = case
    bound = CATALOG.bind(name, params)
    info = CATALOG.cmdlet(name)
    chosen = info.parameter_sets[bound.parameter_set]
    narrowing = [p for p in params if info.in_sets(p)]
    assert all(p in chosen for p in narrowing)
    assert all(p in params for p, mandatory in chosen.items() if mandatory)
    assert set(bound.params) == set(params)
    assert bound.parameter_set == set_name or set_name in bound.candidate_sets


def unique_prefix(info_name: str, param: ParameterInfo) -> str:
    info = CATALOG.cmdlet(info_name)
    keys = [(k.lower(), p.name) for p in info.parameters.values() for k in (p.name, *p.aliases)]
    for length in range(1, len(param.name) + 1):
        prefix = param.name[:length].lower()
        owners = {owner for key, owner in keys if key.startswith(prefix)}
        if owners == {param.name}:
            return param.name[:length]
    return param.name


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([n for n in NAMES if CATALOG.cmdlet(n).declared]), st.data())
def test_names_any_case_and_unique_prefixes_resolve_to_the_parameter(
    name: str, data: st.DataObject
) -> None:
    info = CATALOG.cmdlet(name)
    param = data.draw(st.sampled_from([info.parameters[p] for p in info.declared]))
    flipped = "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(param.name))
    prefix = unique_prefix(name, param)
    for typed in (flipped, prefix):
        assert CATALOG.resolve_names(name, [typed])  # the parameter is found in some set
        assert info.match(typed) == param


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(2**40), max_value=2**40), st.booleans())
def test_int32_parameters_accept_exactly_the_int32_range(number: int, as_text: bool) -> None:
    value: object = str(number) if as_text else number
    params = {"ComputerName": "a", "Port": value}
    if -(2**31) <= number < 2**31:
        assert bind("Test-NetConnection", params).params["Port"] == number
    else:
        error = error_of("Test-NetConnection", params)
        assert error.message == (
            f"Cannot bind parameter 'Port'. Cannot convert value \"{number}\" to type "
            '"System.Int32". Error: "Value was either too large or too small for an Int32."'
        )
