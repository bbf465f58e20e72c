"""`cardstation demo`: a whole simulated station making one card, each step shown.

Simulators: the CMS (HTTP), the CS-220e (TCP) whose contact station feeds the encoder's vpcd
slot, the card's chip and the PSAM behind the real pcscd. The station itself is the production
pipeline (journal, outbox, PSAM key service) built from configuration, as `cardstation serve`
builds it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from cardstation.logs import mask_id_number

STEPS = ("FETCHED", "PREVIEWED", "FED", "CHIP_WRITTEN", "VERIFIED", "RETURN_QUEUED", "PRINTED",
         "EJECTED", "DONE")


def run_demo(output: str, id_number: str, speed: float = 0.05) -> int:
    from cardstation.drivers.pcsc.readers import PcscContext
    from cardstation.pcscd import ensure_running
    from cardstation.personalization.journal import Issuance, State
    from cardstation.simulators.station import SimulatedStation
    from cardstation.station import build_station

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    ensure_running()

    def show(issuance: Issuance, message: str) -> None:
        state = issuance.state.value
        number = f"{STEPS.index(state) + 1}/{len(STEPS)}" if state in STEPS else "-"
        print(f"[{number}] {state:<14} {message}", flush=True)

    with SimulatedStation(out, speed=speed) as sim, PcscContext() as pcsc:
        sim.load_blank(1)
        config = sim.config()
        pcsc.wait_for_card(config.readers.psam, timeout=10)
        print(f"simulated station: CMS {sim.cms.base_url}, printer {sim.printer_url}, "
              f"encoder '{config.readers.encoder}', PSAM '{config.readers.psam}'", flush=True)
        print(f"making a card for the sample applicant {mask_id_number(id_number)}", flush=True)
        station = build_station(config, on_event=show)
        try:
            station.worker.start()
            issuance = station.pipeline.issue(id_number)
            left = station.drain_returns(10)
            issuance = station.journal.get(issuance.id)
        finally:
            station.close()
        returns = [r for r in sim.cms.ledger(photos=False)["returns"]
                   if r["record"]["id_number"] == id_number]
        pngs = sorted(str(p) for p in (out / "printed").glob("*.png"))
    if issuance.state is not State.DONE:
        print(f"card not made: {issuance.state.value}: {issuance.reason}", file=sys.stderr)
        return 1
    record = dict(returns[0]["record"]) if returns else {}
    if record:
        record["id_number"] = mask_id_number(record["id_number"])
        account = record["bank_account"]
        record["bank_account"] = account[:6] + "*" * (len(account) - 10) + account[-4:]
    print(f"card made in {time.monotonic() - started:.1f} s", flush=True)
    print(json.dumps({
        "state": issuance.state.value,
        "preview": issuance.data.get("preview"),
        "printed": pngs,
        "cms_ledger_return": record,
        "returns_pending": left,
        "journal": str(config.data_path / "journal.sqlite"),
    }, ensure_ascii=False, indent=2))
    return 0 if record and left == 0 else 1
