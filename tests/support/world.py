"""The pipeline tests' simulated station (see cardstation.simulators.station) and what the
tests ask of it; the `world` fixture is in conftest.py."""

from __future__ import annotations

from pathlib import Path

from cardstation.simulated import WiredSimulatedStation
from cardstation.simulators.station import SimulatedStation

World = WiredSimulatedStation


def make_world(tmp: Path, extra_applicants: int = 0, speed: float = 0.0) -> World:
    return World(tmp, speed=speed, extra_applicants=extra_applicants).start()


def settled(station, issuance):  # (Station, Issuance) -> Issuance
    """The job once its return is settled: DONE only after the CMS acknowledged it."""
    station.drain_returns(10)
    return station.journal.get(issuance.id)


def ledger_returns(world: SimulatedStation, id_number: str) -> list[dict]:
    """The returns the CMS simulator holds for one applicant."""
    return [r for r in world.cms.ledger(photos=False)["returns"]
            if r["record"]["id_number"] == id_number]
