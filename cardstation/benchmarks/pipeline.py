"""Pipeline figures on the simulated station through the real pcscd path.

- software_ms_per_card: wall time of one card at printer speed 0 (no simulated mechanics), so
  what remains is the station's own work: CMS calls, validation, rendering, journal commits,
  PC/SC exchanges, printer protocol. p50/p95 with the per-stage medians as context.
- apdus_per_card: encoder APDUs per card (the PSAM's are on its own reader).
- throughput_ratio.{pipelined,sequential}: cards per hour divided by the printer-bound limit,
  at realistic printer timing scaled by `speed`, with a CMS that answers in `cms_latency`
  seconds. The limit is measured: one card fed, printed and ejected with no chip work and no
  CMS. Pipelined = the next application is fetched and previewed while the printer works and
  printing never waits for the return; sequential = the vendor program's order (fetch, preview,
  feed, write, wait for the return, print).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

from cardstation.simulators.station import SimulatedStation


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _fresh(sim_args: dict, folder: Path) -> SimulatedStation:
    """A started simulated station, once the readers have let go of the last one's cards."""
    from cardstation.drivers.pcsc.readers import PcscContext
    sim = SimulatedStation(folder, **sim_args)
    with PcscContext() as pcsc:
        for reader in ("Virtual PCD 00 00", "Virtual PCD 00 01"):
            pcsc.wait_for_removal(reader, timeout=10)
        sim.start()
        pcsc.wait_for_card("Virtual PCD 00 01", timeout=10)
    return sim


def _software(folder: Path, cards: int) -> list[dict]:
    from cardstation.station import build_station

    sim = _fresh({"speed": 0.0, "extra_applicants": cards}, folder)
    try:
        sim.load_blank(cards)
        station = build_station(sim.config())
        ids = sim.cms.samples["ready"][:cards]
        times: list[float] = []
        apdus: list[int] = []
        stages: dict[str, list[float]] = {}
        try:
            station.worker.start()
            for id_number in ids:
                before = station.pipeline.apdus
                t0 = time.perf_counter()
                issuance = station.pipeline.issue(id_number)
                times.append((time.perf_counter() - t0) * 1000)
                apdus.append(station.pipeline.apdus - before)
                for stage, ms in issuance.data.get("timings_ms", {}).items():
                    stages.setdefault(stage, []).append(ms)
            station.drain_returns(10)
        finally:
            station.close()
    finally:
        sim.stop()
    breakdown = {k: round(statistics.median(v), 2) for k, v in stages.items()}
    context = {"cards": cards, "printer_speed": 0.0, "path": "pcscd+vpcd, printer over TCP, "
               "CMS over HTTP", "stage_median_ms": breakdown}
    return [
        {"name": "pipeline.software_ms_per_card.p50", "value": round(statistics.median(times), 1),
         "unit": "ms", "target": "<= 150", **context},
        {"name": "pipeline.software_ms_per_card.p95", "value": round(_percentile(times, 0.95), 1),
         "unit": "ms", **context},
        {"name": "pipeline.apdus_per_card", "value": statistics.median(apdus), "unit": "count",
         "cards": cards, "reader": "encoder"},
    ]


def _printer_bound_seconds(folder: Path, speed: float) -> float:
    """One card through the printer alone: feed, duplex print, eject."""
    from cardstation.drivers.hiti import Printer
    from cardstation.simulators.printer.model import PrinterModel
    from cardstation.simulators.printer.server import PrinterSimServer

    model = PrinterModel(speed=speed, output_dir=folder / "printer-only")
    model.load_cards(1)
    server = PrinterSimServer(model).start()
    printer = Printer.open(server.url, poll_interval=0.01, panel_pause=0.2 * speed)
    face = Image.new("RGB", (1014, 642), (200, 220, 240))
    try:
        t0 = time.perf_counter()
        printer.move_to_contact()
        printer.print_faces(face, face)
        printer.eject()
        return time.perf_counter() - t0
    finally:
        printer.close()
        server.close()


def _throughput(folder: Path, cards: int, speed: float, latency: float,
                pipelined: bool) -> float:
    """Seconds per card in steady state for one mode: the interval between consecutive cards
    reaching DONE (the first card's start-up, before the pipeline is full, is left out)."""
    from cardstation.station import build_station

    sim = _fresh({"speed": speed, "extra_applicants": cards}, folder)
    try:
        sim.load_blank(cards)
        sim.cms.inject("slow", seconds=latency)
        finished: list[float] = []

        def on_event(issuance, _message: str) -> None:  # issuance: journal.Issuance
            if issuance.state.value == "DONE":
                finished.append(time.perf_counter())

        station = build_station(sim.config(cms={"read_timeout": latency + 5}),
                                on_event=on_event)
        try:
            if pipelined:
                station.worker.start()
            else:  # the return must be at the CMS before the card is printed
                station.pipeline.wake_returns = lambda: station.drain_returns(latency * 10 + 10)
            ids = sim.cms.samples["ready"][:cards]
            done = station.pipeline.run_batch(ids, prefetch=pipelined)
            station.drain_returns(latency * 10 + 10)
        finally:
            station.close()
        assert len(done) == cards and all(i.state.value == "DONE" for i in done)
        return (finished[-1] - finished[0]) / (len(finished) - 1)
    finally:
        sim.stop()


def run(cards: int = 20, throughput_cards: int = 4, speed: float = 0.25,
        cms_latency: float = 0.5) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="cardstation-bench-") as tmp:
        folder = Path(tmp)
        figures = _software(folder / "software", cards)
        bound = _printer_bound_seconds(folder, speed)
        per_card = {
            mode: _throughput(folder / mode, throughput_cards, speed, cms_latency, mode == "p")
            for mode in ("p", "s")
        }
    context = {"printer_speed": speed, "printer_bound_s_per_card": round(bound, 3),
               "cms_latency_s": cms_latency, "cards": throughput_cards,
               "note": "speed 0.25 = the reference timings (21 s per YMCKO side) four times faster"}
    for mode, name in (("p", "pipelined"), ("s", "sequential")):
        figures.append({
            "name": f"pipeline.throughput_ratio.{name}",
            "value": round(bound / per_card[mode], 3), "unit": "ratio",
            "s_per_card": round(per_card[mode], 3),
            **({"target": ">= 0.97"} if mode == "p" else {}), **context,
        })
    return figures
