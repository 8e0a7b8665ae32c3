"""Process settings from ``HVLAB_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything a process of hvlab reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="HVLAB_", extra="ignore")

    home: Path = Field(default=Path("~/.hvlab"), description="state dir: dev db, sim, pid files")
    temporal_address: str = Field(
        default="127.0.0.1:7233",
        description="frontend host:port; when unset it follows dev_port (127.0.0.1:<dev_port>)",
    )
    namespace: str = "default"
    task_queue: str = "hvlab"
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_tls_ca: Path | None = None
    temporal_tls_server_name: str | None = None
    temporal_api_key: str | None = Field(default=None, repr=False)
    ui_port: int = 8233
    dev_port: int = 7233
    metrics_address: str = Field(
        default="127.0.0.1:9464",
        description="worker's Prometheus endpoint (/metrics, /healthz); empty disables it",
    )
    dev_http_port: int = Field(default=7243, description="dev server HTTP API port")
    dev_metrics_port: int = Field(default=7244, description="dev server's own /metrics port")
    connect_timeout: float = Field(default=5.0, gt=0, description="seconds to reach Temporal")
    winrm_connect_timeout: int = Field(
        default=5, ge=1, description="seconds a worker waits for a lab host to accept a WinRM "
        "connection (not for a command's answer)")
    max_concurrent_activities: int = Field(default=64, ge=1, description="per worker")
    graceful_shutdown_seconds: float = Field(
        default=20.0, ge=0, description="how long a stopping worker lets activities finish"
    )
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    secrets_file: Path | None = None
    codec_enabled: bool = Field(
        default=False, description="encrypt payloads with the AES-GCM codec (hvlab.codec)"
    )
    codec_keys_file: Path | None = Field(
        default=None, description="keyring file: one keyid:base64-of-32-bytes per line"
    )
    codec_keys: str | None = Field(
        default=None, repr=False, description="keyring as comma-separated keyid:base64 entries"
    )
    codec_server_address: str = Field(
        default="127.0.0.1:8888", description="host:port of `hvlab codec-server`"
    )
    codec_server_token_file: Path | None = Field(
        default=None, description="file holding the codec server's bearer token"
    )
    codec_cors_origins: str = Field(
        default="", description="comma-separated origins (the Web UI's) allowed by CORS"
    )

    @model_validator(mode="before")
    @classmethod
    def _address_follows_dev_port(cls, data: Any) -> Any:
        """Without an explicit ``temporal_address``, point at the dev server's port."""
        if isinstance(data, dict) and not data.get("temporal_address") and data.get("dev_port"):
            return {**data, "temporal_address": f"127.0.0.1:{data['dev_port']}"}
        return data

    @property
    def home_dir(self) -> Path:
        """``home`` with ``~`` expanded."""
        return self.home.expanduser()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (read once)."""
    return Settings()
