"""Resolving credential references on the worker (``env:VAR`` / ``file:PATH``).

Secrets are read only here, only when a remote call needs them, and never logged, returned or
put in an exception message.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hvlab.powershell.errors import CredentialUnavailable


@dataclass(frozen=True)
class Secret:
    """A resolved secret; its repr never shows the value."""

    value: str = field(repr=False)

    def __str__(self) -> str:
        return "********"


@dataclass(frozen=True)
class ResolvedCredential:
    username: str
    password: Secret


class SecretResolver:
    """Turns ``env:VAR`` / ``file:PATH`` references into secrets.

    ``secrets_file`` (JSON object ``{"VAR": "value"}``) is consulted for ``env:`` references
    that the environment lacks, so a worker can keep its secrets in one 0600 file.
    """

    def __init__(
        self, environ: Mapping[str, str] | None = None, secrets_file: Path | None = None
    ) -> None:
        self._environ = os.environ if environ is None else environ
        self._secrets_file = secrets_file

    def _from_file(self, variable: str) -> str | None:
        if self._secrets_file is None or not self._secrets_file.exists():
            return None
        data = json.loads(self._secrets_file.read_text(encoding="utf-8"))
        value = data.get(variable) if isinstance(data, dict) else None
        return value if isinstance(value, str) else None

    def resolve(self, reference: str, *, who: str = "") -> Secret:
        """The secret a reference points at; CredentialUnavailable names the reference only."""
        kind, _, target = reference.partition(":")
        if kind == "env":
            value = self._environ.get(target) or self._from_file(target)
            if value:
                return Secret(value)
            raise CredentialUnavailable(who, "", f"environment variable {target} is not set")
        if kind == "file":
            try:
                return Secret(Path(target).expanduser().read_text(encoding="utf-8").strip())
            except OSError as exc:
                raise CredentialUnavailable(
                    who, "", f"cannot read secret file {target}: {exc.strerror}"
                ) from None
        raise CredentialUnavailable(who, "", "credential reference must be env:VAR or file:PATH")
