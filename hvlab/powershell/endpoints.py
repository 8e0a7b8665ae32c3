"""Where each host of a lab is reached, and the credential lookup the session pool uses.

Two sources: the lab file's ``connection`` blocks (real hosts; secrets resolved on the worker by
:class:`SecretResolver` from the credential's ``env:``/``file:`` reference), or the simulator's
``$HVLAB_HOME/sim/endpoints.json`` (loopback address, ephemeral port and the passwords the
fleet generated for references without a value). Secrets stay in this layer: callers get
:class:`Endpoint` objects that name a credential (and the host's bootstrap credential, its
local Administrator until it is joined), and a lookup the :class:`SessionPool` calls when it
opens a pool or builds a PSCredential parameter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

from hvlab.powershell.credentials import ResolvedCredential, Secret, SecretResolver
from hvlab.powershell.errors import CredentialUnavailable, NotFound
from hvlab.powershell.session import CredentialLookup, Endpoint
from hvlab.spec import Host, HostRole, LabSpec, Transport

SIM_ENDPOINTS = Path("sim") / "endpoints.json"


class EndpointSource(Protocol):
    """Resolves a host name of the lab to how it is reached."""

    def endpoint(self, host: str) -> Endpoint: ...


def sim_endpoints_path(home: Path) -> Path:
    """``$HVLAB_HOME/sim/endpoints.json``, written by a running simulated fleet."""
    return home / SIM_ENDPOINTS


def _lookup(endpoints: Mapping[str, Endpoint], host: str) -> Endpoint:
    for name, endpoint in endpoints.items():
        if name.lower() == host.lower():
            return endpoint
    raise NotFound(host, "", "the lab has no endpoint for this host")


class StaticEndpoints:
    """A fixed host -> endpoint map (case-insensitive host names)."""

    def __init__(self, endpoints: Mapping[str, Endpoint]) -> None:
        self._endpoints = dict(endpoints)

    def endpoint(self, host: str) -> Endpoint:
        return _lookup(self._endpoints, host)


class SimEndpoints:
    """The simulator's endpoints, re-read on every lookup (a restarted fleet moves ports)."""

    def __init__(self, spec: LabSpec, home: Path) -> None:
        self._spec = spec
        self._home = home

    def endpoint(self, host: str) -> Endpoint:
        return _lookup(sim_endpoints(self._spec, self._home), host)


# -- endpoints -----------------------------------------------------------------------------


def lab_endpoint(host: Host) -> Endpoint:
    """The endpoint a lab file's ``connection`` block describes."""
    conn = host.connection
    scheme: Literal["http", "https"] = "https" if conn.transport is Transport.https else "http"
    return Endpoint(
        host=host.name, address=conn.address, port=conn.effective_port, scheme=scheme,
        auth=str(conn.auth), credential=conn.credential,
        validate_certificate=conn.validate_certificate, insecure=conn.insecure,
        **_bootstrap(host),
    )


def _bootstrap(host: Host) -> dict[str, Any]:
    """The endpoint fields for a host's first contact (its local Administrator until joined)."""
    joins = host.join_domain and host.role is not HostRole.dc
    return {"bootstrap_credential": (host.bootstrap_credential or "") if joins else "",
            "joins_domain": joins}


def _read_sim(home: Path) -> dict[str, Any]:
    path = sim_endpoints_path(home)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CredentialUnavailable(
            "", "", f"no simulated fleet endpoints at {path} (start `hvlab sim`): {exc}"
        ) from None
    return data if isinstance(data, dict) else {}


def _read_sim_hosts(home: Path) -> dict[str, dict[str, Any]]:
    hosts = _read_sim(home).get("hosts")
    return hosts if isinstance(hosts, dict) else {}


def _sim_endpoint(host: Host, entry: Mapping[str, Any]) -> Endpoint:
    scheme: Literal["http", "https"] = "https" if entry.get("scheme") == "https" else "http"
    return Endpoint(
        host=host.name, address=str(entry["address"]), port=int(entry["port"]), scheme=scheme,
        auth=str(entry.get("auth", "ntlm")), credential=host.connection.credential,
        validate_certificate=False, **_bootstrap(host),
    )


def sim_endpoints(spec: LabSpec, home: Path) -> dict[str, Endpoint]:
    """Endpoints of the lab's hosts served by the simulated fleet under ``home``."""
    entries = {name.lower(): entry for name, entry in _read_sim_hosts(home).items()}
    return {
        host.name: _sim_endpoint(host, entries[host.name.lower()])
        for host in spec.hosts
        if host.name.lower() in entries
    }


def endpoints_for(spec: LabSpec, sim: bool, home: Path) -> dict[str, Endpoint]:
    """Every host's endpoint: the simulator's (``sim``) or the lab file's connections."""
    if sim:
        return sim_endpoints(spec, home)
    return {host.name: lab_endpoint(host) for host in spec.hosts}


def endpoint_source(spec: LabSpec, sim: bool, home: Path) -> EndpointSource:
    """An :class:`EndpointSource` for activities (the sim's one follows a restarted fleet)."""
    if sim:
        return SimEndpoints(spec, home)
    return StaticEndpoints(endpoints_for(spec, False, home))


# -- credentials ---------------------------------------------------------------------------


def _credential(spec: LabSpec, name: str) -> tuple[str, str]:
    cred = spec.credentials.get(name)
    if cred is None:
        raise CredentialUnavailable("", "", f"the lab defines no credential named {name!r}")
    return cred.username, cred.secret


class LabCredentials:
    """Credential lookup for real hosts: the lab's username, the secret from the resolver."""

    def __init__(self, spec: LabSpec, resolver: SecretResolver) -> None:
        self._spec = spec
        self._resolver = resolver

    def __call__(self, name: str) -> ResolvedCredential:
        username, reference = _credential(self._spec, name)
        return ResolvedCredential(username, self._resolver.resolve(reference, who=name))


class SimCredentials:
    """Credential lookup for the simulator: the lab's username, and the password the fleet took
    for the credential's reference: the one it generated (``endpoints.json``'s ``secrets``,
    for a reference without a value when it started), else the reference resolved as for real
    hosts (environment, ``HVLAB_SECRETS_FILE``), as the fleet resolved it.
    """

    def __init__(
        self, spec: LabSpec, home: Path, resolver: SecretResolver | None = None
    ) -> None:
        self._spec = spec
        self._home = home
        self._resolver = resolver or SecretResolver()

    def __call__(self, name: str) -> ResolvedCredential:
        username, reference = _credential(self._spec, name)
        generated = _read_sim(self._home).get("secrets")
        value = generated.get(reference) if isinstance(generated, dict) else None
        if isinstance(value, str):
            return ResolvedCredential(username, Secret(value))
        return ResolvedCredential(username, self._resolver.resolve(reference, who=name))


def credentials_for(
    spec: LabSpec, sim: bool, home: Path, resolver: SecretResolver | None = None
) -> CredentialLookup:
    """The credential lookup for a :class:`SessionPool` serving this lab."""
    if sim:
        return SimCredentials(spec, home, resolver)
    return LabCredentials(spec, resolver or SecretResolver())


# -- the worker's lab ----------------------------------------------------------------------

LAB_FILE_VARIABLE = "HVLAB_LAB_FILE"
LAB_SIM_VARIABLE = "HVLAB_LAB_SIM"


class WorkerLab:
    """Endpoints and credentials for the labs a worker serves, resolved per activity.

    An activity's lab id (``hvlab.labs.CURRENT_LAB``, set from its input) selects a lab
    registered under ``home/labs`` by ``hvlab up``: ``<lab>`` for real hosts, ``sim.<lab>``
    for the simulated fleet (separate registrations, see :mod:`hvlab.labs`). Without one, the lab
    file named by ``HVLAB_LAB_FILE`` is used (``HVLAB_LAB_SIM=1`` for the simulator). A worker
    without any lab still starts (the doctor needs none); a remote step then fails with
    CredentialUnavailable, not retried.
    """

    def __init__(
        self, home: Path, environ: Mapping[str, str], secrets_file: Path | None = None
    ) -> None:
        self._home = home
        self._environ = environ
        self._secrets_file = secrets_file
        self._default: LabSpec | None = None

    def _current(self) -> tuple[LabSpec, bool]:
        from hvlab.labs import CURRENT_LAB, LabRegistry, is_sim

        lab = CURRENT_LAB.get()
        if lab:
            registry = LabRegistry(self._home)
            registered = registry.load(lab)
            if registered is None:
                mode = "with --sim" if is_sim(lab) else "without --sim"
                raise CredentialUnavailable(
                    "", "", f"lab {lab!r} is not registered on this worker "
                    f"({registry.path(lab) or registry.directory}): run an hvlab command for "
                    f"its lab file {mode} with this HVLAB_HOME")
            return registered.spec, registered.sim
        return self._default_spec(), self.sim

    @property
    def sim(self) -> bool:
        return self._environ.get(LAB_SIM_VARIABLE, "").lower() in ("1", "true", "yes")

    def _default_spec(self) -> LabSpec:
        if self._default is None:
            from hvlab.specfile import SpecError, load_lab

            path = self._environ.get(LAB_FILE_VARIABLE, "")
            if not path:
                raise CredentialUnavailable(
                    "", "", f"the worker serves no lab: set {LAB_FILE_VARIABLE}")
            try:
                self._default = load_lab(path)
            except (OSError, SpecError) as exc:
                raise CredentialUnavailable("", "", f"cannot load lab {path}: {exc}") from None
        return self._default

    def spec(self) -> LabSpec:
        """The lab of the running activity."""
        return self._current()[0]

    def endpoint(self, host: str) -> Endpoint:
        spec, sim = self._current()
        return endpoint_source(spec, sim, self._home).endpoint(host)

    def __call__(self, name: str) -> ResolvedCredential:
        spec, sim = self._current()
        resolver = SecretResolver(self._environ, self._secrets_file)
        return credentials_for(spec, sim, self._home, resolver)(name)
