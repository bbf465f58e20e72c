"""The simulated station wired to a station's configuration: the simulators say where they
are (`config_sections()`), the composition root makes that a `Config` (the simulators know
nothing of the configuration's classes)."""

from __future__ import annotations

from typing import Any, Protocol

from cardstation.config import Config
from cardstation.simulators.station import SimulatedStation


class _Simulators(Protocol):
    def config_sections(self) -> dict[str, Any]: ...


def station_config(sim: _Simulators, **sections: dict[str, Any]) -> Config:
    """A configuration using `sim`'s simulators, with `sections` over it."""
    base = Config().with_values(**sim.config_sections())
    return base.with_values(**sections) if sections else base


class WiredSimulatedStation(SimulatedStation):
    """A SimulatedStation that also gives the station's configuration (`config()`)."""

    def config(self, **sections: dict[str, Any]) -> Config:
        return station_config(self, **sections)
