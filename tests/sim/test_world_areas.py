"""A cmdlet module's own state (``World.area``) is saved and loaded with the world."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from simulator.world import Directory, World


class OuStore(BaseModel):
    ous: dict[str, str] = Field(default_factory=dict)


def test_an_areas_state_survives_save_and_load(tmp_path: Path) -> None:
    world = World(ad=Directory(fqdn="kosa.vm", netbios="KOSA", dc="DC1"))
    world.area("directory.ous", OuStore).ous["ou=students"] = "Students"
    assert world.area("directory.ous", OuStore).ous == {"ou=students": "Students"}
    world.save(tmp_path / "world.json")
    loaded = World.load(tmp_path / "world.json")
    assert loaded.area("directory.ous", OuStore).ous == {"ou=students": "Students"}
    assert isinstance(loaded.areas["directory.ous"], OuStore)
