"""Process settings from ``HVLAB_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything a process of hvlab reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="HVLAB_", extra="ignore")

    home: Path = Field(default=Path("~/.hvlab"), description="state dir: dev db, sim, pid files")
    temporal_address: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = "hvlab"
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_tls_ca: Path | None = None
    temporal_tls_server_name: str | None = None
    temporal_api_key: str | None = Field(default=None, repr=False)
    ui_port: int = 8233
    dev_port: int = 7233
    metrics_address: str = "127.0.0.1:9464"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    secrets_file: Path | None = None

    @property
    def home_dir(self) -> Path:
        """``home`` with ``~`` expanded."""
        return self.home.expanduser()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (read once)."""
    return Settings()
