"""The fault matrix reuses the workflow tests' fixtures: a real dev server (session), a fleet
of the seed lab at instant speed on ephemeral ports under a temp HVLAB_HOME, the seed spec and
the CLI environment (see tests/workflows/conftest.py)."""

from tests.workflows.conftest import cli_env, fleet, seed

__all__ = ["cli_env", "fleet", "seed"]
