"""Pipeline figures on the simulated station through the real pcscd path.

- software_ms_per_card: the station's own time for one card at printer speed 0 (no simulated
  mechanics): CMS calls, validation, rendering, journal commits, PC/SC exchanges, printer
  protocol. It is the card's wall time minus the time spent waiting for pcscd to report the
  card leaving and arriving in the encoder. That wait is the reader's, not the station's:
  pcscd asks the vpcd driver for card presence every 400 ms (fixed in pcsc-lite for drivers
  without an event thread) and vpcd takes one poll to see the old card go and another to
  see the new one, so a card can never take less than about 800 ms of wall time here,
  whatever the software does. `wall_ms_per_card` reports the wall time and
  `presence_floor_ms_per_card` measures that floor with no software at all (feed, wait for
  the card, eject, wait for it to go). p50/p95 with the per-stage medians as context.
- apdus_per_card: encoder APDUs per card (the PSAM's are on its own reader).
- throughput_ratio.lanes3: three printers (lanes) on one station: the cards per hour of all
  three divided by three times the printer-bound limit, beside one printer measured the same
  way in the same run. Each printer's steady state is the median interval between its
  consecutive cards reaching DONE, measured while all three work at once (sharing the CPU,
  the PSAM and the CMS), through the server's runtime (one queue, lanes claiming jobs). At the
  reference printer timing (speed 1, a real CS-220e): a lane's own encode time (the card at
  the chip station: the chip write, the CMS's certificate round trip, the reader noticing the
  card) is fixed seconds, and at speed 0.25 it weighs four times what it does on a real
  printer. The speed-0.25 figures are given beside it.
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

from cardstation.personalization.face import FaceData, render_print
from cardstation.simulated import station_config
from cardstation.simulators.process import SimulatedStationProcess


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _fresh(sim_args: dict, folder: Path) -> SimulatedStationProcess:
    """Simulators started in their own process (see simulators/process.py), once the readers
    have let go of the last ones' cards. No printed-face PNGs: a real printer spends no
    station CPU on them."""
    from cardstation.drivers.pcsc.readers import PcscContext
    from cardstation.simulators.station import ENCODER_READERS

    sim = SimulatedStationProcess(folder, printed_faces=False, **sim_args)
    with PcscContext() as pcsc:
        encoders = ENCODER_READERS[:sim_args.get("printers", 1)]
        for reader in (*encoders, "Virtual PCD 00 01"):
            pcsc.wait_for_removal(reader, timeout=10)
        sim.start()
        try:
            pcsc.wait_for_card("Virtual PCD 00 01", timeout=10)
        except BaseException:
            sim.stop()
            raise
    return sim


def _software(folder: Path, cards: int) -> list[dict]:
    from cardstation.station import build_station

    sim = _fresh({"speed": 0.0, "extra_applicants": cards}, folder)
    try:
        sim.load_blank(cards)
        station = build_station(station_config(sim))
        ids = sim.samples("ready")[:cards]
        walls: list[float] = []
        times: list[float] = []
        waits: list[float] = []
        apdus: list[int] = []
        stages: dict[str, list[float]] = {}
        waited = _time_presence_waits(station.pipeline.devices)
        try:
            station.worker.start()
            for id_number in ids:
                before = station.pipeline.apdus
                waited[0] = 0.0
                t0 = time.perf_counter()
                issuance = station.pipeline.issue(id_number)
                wall = (time.perf_counter() - t0) * 1000
                walls.append(wall)
                waits.append(waited[0] * 1000)
                times.append(wall - waited[0] * 1000)
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
               "CMS over HTTP", "excludes": "waiting for pcscd to report the card leaving "
               "and arriving (400 ms presence poll)",
               "presence_wait_ms_p50": round(statistics.median(waits), 1),
               "stage_median_ms": breakdown, "stage_note": "FED includes the presence wait"}
    return [
        {"name": "pipeline.software_ms_per_card.p50", "value": round(statistics.median(times), 1),
         "unit": "ms", "target": "<= 60", **context},
        {"name": "pipeline.software_ms_per_card.p95", "value": round(_percentile(times, 0.95), 1),
         "unit": "ms", "target": "<= 90", **context},
        {"name": "pipeline.wall_ms_per_card.p50", "value": round(statistics.median(walls), 1),
         "unit": "ms", "cards": cards, "printer_speed": 0.0},
        {"name": "pipeline.apdus_per_card", "value": statistics.median(apdus), "unit": "count",
         "cards": cards, "reader": "encoder"},
    ]


def _time_presence_waits(devices) -> list[float]:  # devices: pipeline.Devices
    """Wrap the encoder's card-presence waits; the returned cell accumulates their seconds."""
    waited = [0.0]

    def timed(wait):
        def run(timeout: float) -> None:
            t0 = time.perf_counter()
            try:
                wait(timeout)
            finally:
                waited[0] += time.perf_counter() - t0
        return run

    devices.wait_for_card = timed(devices.wait_for_card)
    devices.wait_for_removal = timed(devices.wait_for_removal)
    return waited


def _presence_floor(folder: Path, cards: int) -> dict:
    """Wall time per card of the card moves and presence waits alone: no chip, no print."""
    from cardstation.drivers.hiti import Printer
    from cardstation.drivers.pcsc.readers import PcscContext

    sim = _fresh({"speed": 0.0}, folder)
    try:
        sim.load_blank(cards + 1)
        printer = Printer.open(station_config(sim).printer.device, poll_interval=0.01,
                               panel_pause=0)
        encoder = "Virtual PCD 00 00"
        intervals: list[float] = []
        try:
            with PcscContext() as pcsc:
                last = None
                for _ in range(cards + 1):
                    pcsc.wait_for_removal(encoder, 5)
                    printer.move_to_contact()
                    pcsc.wait_for_card(encoder, 10)
                    printer.eject()
                    now = time.perf_counter()
                    if last is not None:
                        intervals.append((now - last) * 1000)
                    last = now
        finally:
            printer.close()
    finally:
        sim.stop()
    return {"name": "pipeline.presence_floor_ms_per_card", "value":
            round(statistics.median(intervals), 1), "unit": "ms", "cards": cards,
            "note": "feed, wait for pcscd to see the card, eject, wait for it to see it go"}


def _printer_bound_seconds(folder: Path, speed: float) -> float:
    """One card through the printer alone, on the same simulators as the throughput runs:
    feed, print the job the pipeline prints (one side: the holder's photo and text on the
    pre-printed chip side), eject. No chip work, no CMS."""
    from cardstation.drivers.hiti import Printer

    sim = _fresh({"speed": speed}, folder)
    try:
        sim.load_blank(1)
        config = station_config(sim)
        printer = Printer.open(config.printer.device, poll_interval=config.printer.poll_interval,
                               panel_pause=config.printer.panel_pause)
        from cardstation.simulators.cms.applicants import example_applicant

        app = example_applicant()
        side = render_print(FaceData(app.name, app.id_number, app.card_number, app.issue_date,
                                     app.bank_name, app.photo))
        try:
            t0 = time.perf_counter()
            printer.move_to_contact()
            printer.print_faces(side)
            printer.eject()
            return time.perf_counter() - t0
        finally:
            printer.close()
    finally:
        sim.stop()


def _throughput(folder: Path, cards: int, speed: float, latency: float,
                pipelined: bool) -> float:
    """Seconds per card in steady state for one mode: the interval between consecutive cards
    reaching DONE (the first card's start-up, before the pipeline is full, is left out)."""
    from cardstation.station import build_station

    sim = _fresh({"speed": speed, "extra_applicants": cards}, folder)
    try:
        sim.load_blank(cards)
        sim.cms_inject("slow", seconds=latency)
        finished: list[float] = []

        def on_event(issuance, *_details: object) -> None:  # issuance: journal.Issuance
            if issuance.state.value == "DONE":
                finished.append(time.perf_counter())

        station = build_station(station_config(sim, cms={"read_timeout": latency + 5}),
                                on_event=on_event)
        try:
            if pipelined:
                station.worker.start()
            else:  # the return must be at the CMS before the card is printed
                station.pipeline.wake_returns = lambda: station.drain_returns(latency * 10 + 10)
            ids = sim.samples("ready")[:cards]
            done = station.pipeline.run_batch(ids, prefetch=pipelined)
            station.drain_returns(latency * 10 + 10)
        finally:
            station.close()
        assert len(done) == cards and all(i.state.value == "DONE" for i in done)
        return (finished[-1] - finished[0]) / (len(finished) - 1)
    finally:
        sim.stop()


def _lanes_throughput(folder: Path, lanes: int, cards_per_lane: int, speed: float,
                      latency: float) -> dict[str, float]:
    """Each lane's seconds per card in steady state (the median interval between its
    consecutive DONEs) while `lanes` printers work at once from one queue."""
    import itertools
    import threading

    from cardstation.server.runtime import StationRuntime
    from cardstation.station import build_station

    cards = lanes * cards_per_lane
    sim = _fresh({"speed": speed, "extra_applicants": cards, "printers": lanes}, folder)
    try:
        for index in range(lanes):
            sim.load_blank(cards_per_lane + 1, printer=index)
        sim.cms_inject("slow", seconds=latency)
        config = station_config(sim, cms={"read_timeout": latency + 5})
        finished: dict[str, list[float]] = {}
        lock = threading.Lock()

        def on_event(issuance, *_details: object) -> None:  # issuance: journal.Issuance
            if issuance.state.value == "DONE":
                with lock:
                    finished.setdefault(str(issuance.data.get("lane")), []).append(
                        time.perf_counter())

        runtime = StationRuntime(lambda **kw: build_station(config, **kw))
        station = runtime.station
        original = station.pipeline.on_event
        for lane in station.lanes:  # the runtime's sink, then the bench's
            lane.pipeline.on_event = lambda i, m, f=None, c=False: (original(i, m, f, c),
                                                                   on_event(i))
        runtime.start()
        try:
            for id_number in sim.samples("ready")[:cards]:
                issuance, _ = runtime.pipeline.open(id_number, admission=runtime.admission)
                runtime.enqueue(issuance.id)
            deadline = time.monotonic() + cards * 60 * max(speed, 0.05) + 120
            while sum(map(len, finished.values())) < cards and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            runtime.stop()
        made = sum(map(len, finished.values()))
        assert made == cards, f"{made} of {cards} cards DONE"
        return {lane: statistics.median(b - a for a, b in itertools.pairwise(times))
                for lane, times in sorted(finished.items())}
    finally:
        sim.stop()


def run(cards: int = 20, throughput_cards: int = 4, speed: float = 0.25,
        cms_latency: float = 0.5) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="cardstation-bench-") as tmp:
        folder = Path(tmp)
        figures = _software(folder / "software", cards)
        figures.append(_presence_floor(folder / "floor", 5))
        bound = _printer_bound_seconds(folder / "printer-only", speed)
        per_card = {
            mode: _throughput(folder / mode, throughput_cards, speed, cms_latency, mode == "p")
            for mode in ("p", "s")
        }
        lanes_fast = _lanes_throughput(folder / "lanes3-fast", 3, throughput_cards, speed,
                                       cms_latency)
        reference = 1.0  # the printer's reference timings (a real CS-220e)
        bound_ref = _printer_bound_seconds(folder / "printer-only-ref", reference)
        one_ref = _lanes_throughput(folder / "lanes1-ref", 1, 3, reference, cms_latency)
        lanes_ref = _lanes_throughput(folder / "lanes3-ref", 3, 3, reference, cms_latency)
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
    def ratio(limit: float, lanes: dict[str, float]) -> float:
        return round(statistics.mean(limit / s_per_card for s_per_card in lanes.values()), 3)

    figures.append({
        "name": "pipeline.throughput_ratio.lanes3", "value": ratio(bound_ref, lanes_ref),
        "unit": "ratio", "target": ">= 0.95", "printer_speed": reference,
        "printer_bound_s_per_card": round(bound_ref, 3), "cms_latency_s": cms_latency,
        "cards_per_hour": round(sum(3600 / s for s in lanes_ref.values()), 1),
        "s_per_card_by_lane": {lane: round(s, 3) for lane, s in lanes_ref.items()},
        "one_printer_ratio": ratio(bound_ref, one_ref),
        "one_printer_cards_per_hour": round(3600 / one_ref["1"], 1), "cards": 9,
        f"at_speed_{speed}": {"lanes3": ratio(bound, lanes_fast),
                              "one_printer_pipelined": round(bound / per_card["p"], 3),
                              "s_per_card_by_lane": {lane: round(s, 3)
                                                     for lane, s in lanes_fast.items()}},
        "note": "speed 1 = the printer's reference timings; a lane's encode time (chip, the "
                "CMS's certificate round trip, the reader's card detection) is not printer "
                "time, and weighs 4x as much at speed 0.25"})
    return figures
