"""The pipeline tests' simulated station (see cardstation.simulators.station)."""

from __future__ import annotations

from pathlib import Path

from cardstation.simulated import WiredSimulatedStation

World = WiredSimulatedStation


def make_world(tmp: Path, extra_applicants: int = 0, speed: float = 0.0) -> World:
    return World(tmp, speed=speed, extra_applicants=extra_applicants).start()
