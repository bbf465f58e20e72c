"""The pipeline tests' simulated station (see cardstation.simulators.station)."""

from __future__ import annotations

from pathlib import Path

from cardstation.simulators.station import SimulatedStation

World = SimulatedStation


def make_world(tmp: Path, extra_applicants: int = 0, speed: float = 0.0) -> SimulatedStation:
    return SimulatedStation(tmp, speed=speed, extra_applicants=extra_applicants).start()
