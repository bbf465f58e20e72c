"""`/metrics` for Prometheus: what a province watching hundreds of stations needs to see, read
when it is scraped (the journal's counts, the latest look at the devices, the low layers'
tallies) or observed as it happens (stage durations, printer faults as they appear).

Names are `cardstation_*` in base units, counters end in `_total`, and no label ever carries an
ID number, a name or a card number: labels are states, stage names, device roles, reason codes,
CMS operations and status-word classes. Served on loopback by default (`[server]
metrics_listen`); off loopback only with TLS, like the API.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from cardstation import __version__
from cardstation.drivers.tally import APDUS, PCSC_CONTEXT_RESETS
from cardstation.personalization.cms import REQUESTS as CMS_REQUESTS
from cardstation.personalization.journal import State

from .runtime import Event, StationRuntime, StationSnapshot

_STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class StationMetrics(Collector):
    def __init__(self, runtime: StationRuntime) -> None:
        self.runtime = runtime
        self.registry = CollectorRegistry(auto_describe=True)
        self.stage_seconds = Histogram(
            "cardstation_stage_duration_seconds", "Time a job took to reach each state from "
            "the one before", ["stage"], buckets=_STAGE_BUCKETS, registry=self.registry)
        self._last: dict[str, tuple[str, float]] = {}  # issuance id -> (state, at)
        self._faults: dict[tuple[str, str, str], int] = {}  # (lane, device, code) -> times seen
        self._showing: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()
        self.registry.register(self)
        runtime.events.listeners.append(self.on_event)
        previous = runtime.on_snapshot

        def on_snapshot(snap: StationSnapshot) -> None:
            if previous is not None:
                previous(snap)
            self.on_snapshot(snap)

        runtime.on_snapshot = on_snapshot
        self.on_snapshot(runtime.snapshot)

    # -- observed as it happens ------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        with self._lock:
            last = self._last.get(event.issuance_id)
            if last is not None and last[0] != event.state:
                self.stage_seconds.labels(event.state).observe(max(0.0, event.at - last[1]))
            if event.final:
                self._last.pop(event.issuance_id, None)
            elif last is None or last[0] != event.state:
                self._last[event.issuance_id] = (event.state, event.at)

    def on_snapshot(self, snap: StationSnapshot) -> None:
        """Count a device fault each time it appears (not each second it stays)."""
        now = {(d.lane, d.name, d.reason_code) for d in snap.devices
               if d.status in ("FAULT", "DISCONNECTED") and d.reason_code}
        now |= {("", device, f.code) for device, f in snap.station_problems}
        now |= {(lane.name, device.partition(".")[0], f.code)
                for lane in snap.lanes for device, f in lane.problems}
        with self._lock:
            for key in now - self._showing:
                self._faults[key] = self._faults.get(key, 0) + 1
            self._showing = now

    # -- read when scraped -----------------------------------------------------------------
    def collect(self) -> Any:
        rt = self.runtime
        info = InfoMetricFamily("cardstation_build", "The station software's version")
        info.add_metric([], {"version": __version__})
        yield info
        counts = rt.journal.state_counts()
        jobs = GaugeMetricFamily("cardstation_issuances", "Card jobs in each state",
                                 labels=["state"])
        for state in State:
            jobs.add_metric([state.value], counts.get(state, 0))
        yield jobs
        finished = CounterMetricFamily("cardstation_issuances_finished",
                                       "Card jobs ended, by outcome", labels=["outcome"])
        finished.add_metric(["done"], counts.get(State.DONE, 0))
        finished.add_metric(["rejected"], counts.get(State.REJECTED, 0))
        yield finished
        queued, running = rt.queue_counts()
        yield GaugeMetricFamily("cardstation_queue_jobs", "Jobs waiting for the printer",
                                value=queued)
        yield GaugeMetricFamily("cardstation_running_jobs", "Jobs on the printer now",
                                value=running)
        yield from self._returns()
        yield from self._printer(rt.snapshot)
        yield from self._tallies()

    def _returns(self) -> Any:
        summary = self.runtime.station.outbox.summary()
        pending = sum(summary.get(s, (0, None))[0] for s in ("pending", "delivering"))
        oldest = min((t for s in ("pending", "delivering")
                      if (t := summary.get(s, (0, None))[1]) is not None), default=None)
        yield GaugeMetricFamily("cardstation_returns_pending", "Data returns the CMS has not "
                                "acknowledged yet (the card must not be handed over)",
                                value=pending)
        yield GaugeMetricFamily("cardstation_returns_failed", "Data returns given up on (an "
                                "operator must resend or restore them)",
                                value=summary.get("failed", (0, None))[0])
        yield GaugeMetricFamily("cardstation_returns_oldest_pending_age_seconds",
                                "Age of the oldest unacknowledged data return (0: none)",
                                value=0.0 if oldest is None else max(0.0, time.time() - oldest))
        yield CounterMetricFamily("cardstation_returns_delivered", "Data returns the CMS "
                                  "acknowledged", value=summary.get("delivered", (0, None))[0])

    def _printer(self, snap: StationSnapshot) -> Any:
        up = GaugeMetricFamily("cardstation_printer_up", "1 when the printer answers and has "
                               "no blocking alert", labels=["lane"])
        ribbon = GaugeMetricFamily("cardstation_ribbon_remaining_ratio", "Ribbon left, as a "
                                   "share of a full roll", labels=["lane"])
        prints = GaugeMetricFamily("cardstation_ribbon_prints_remaining", "Prints the ribbon "
                                   "has left", labels=["lane"])
        printed = CounterMetricFamily("cardstation_printer_cards_printed", "Cards the printer "
                                      "has printed in its life (its own counter)",
                                      labels=["lane"])
        for lane in snap.lanes:
            up.add_metric([lane.name], 1.0 if lane.printer.status in ("READY", "BUSY")
                          else 0.0)
            if lane.ribbon_remaining >= 0 and lane.ribbon_capacity > 0:
                ribbon.add_metric([lane.name],
                                  min(1.0, lane.ribbon_remaining / lane.ribbon_capacity))
            if lane.ribbon_remaining >= 0:
                prints.add_metric([lane.name], lane.ribbon_remaining)
            if lane.print_count >= 0:
                printed.add_metric([lane.name], lane.print_count)
        yield up
        yield ribbon
        yield prints
        yield printed
        faults = CounterMetricFamily("cardstation_device_faults", "Device faults, counted "
                                     "each time one appears", labels=["lane", "device", "code"])
        with self._lock:
            for (lane_name, device, code), n in sorted(self._faults.items()):
                faults.add_metric([lane_name, device, code], n)
        yield faults

    def _tallies(self) -> Any:
        apdus = CounterMetricFamily("cardstation_apdus", "Chip commands answered, by status "
                                    "word class", labels=["sw_class"])
        for sw_class, n in sorted(APDUS.snapshot().items()):
            apdus.add_metric([str(sw_class)], n)
        yield apdus
        cms = CounterMetricFamily("cardstation_cms_requests", "Requests to the CMS, by "
                                  "operation and result (ok or the error's code)",
                                  labels=["operation", "result"])
        for key, n in sorted(CMS_REQUESTS.snapshot().items(), key=str):
            operation, result = key if isinstance(key, tuple) else (str(key), "")
            cms.add_metric([str(operation), str(result)], n)
        yield cms
        yield CounterMetricFamily("cardstation_pcsc_context_resets", "PC/SC contexts made "
                                  "again after an error",
                                  value=sum(PCSC_CONTEXT_RESETS.snapshot().values()))
