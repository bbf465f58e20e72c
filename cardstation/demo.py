"""`cardstation demo`: a whole simulated station making one card through the gRPC API.

Starts pcscd if needed and `serve --simulate` in this process: the CMS (HTTP), the CS-220e
(TCP) whose contact station feeds the encoder's vpcd slot, the card's chip and the PSAM behind
the real pcscd, and the production station behind the gRPC server. Then, as any operator
console would, it creates the job over a real port, watches it step by step, and prints where
the preview and printed faces are and the CMS ledger's return. Exit 0 only if the card is DONE.
"""

from __future__ import annotations

import json
import sys
import time
import uuid

from cardstation.logs import mask_id_number

STEPS = ("QUEUED", "FETCHED", "PREVIEWED", "FED", "CHIP_WRITTEN", "VERIFIED", "RETURN_QUEUED",
         "PRINTED", "EJECTED", "DONE")


def run_demo(output: str, id_number: str, speed: float = 0.05) -> int:
    import grpc

    from cardstation.commands.serve import start_server
    from cardstation.config import Config
    from cardstation.protos.cardstation.v1 import issuance_pb2 as ipb
    from cardstation.protos.cardstation.v1 import issuance_pb2_grpc

    started = time.monotonic()
    print("starting the simulated station (pcscd, vpcd card + PSAM, CS-220e, CMS) and the "
          "gRPC server ...", flush=True)
    running = start_server(Config(), "127.0.0.1:0", simulate=True, speed=speed, blank_cards=3,
                           folder=output)
    sim = running.simulated
    try:
        address = f"127.0.0.1:{running.port}"
        print(f"server on {address}; CMS {sim.cms.base_url}; printer {sim.printer_url}",
              flush=True)
        print(f"making a card for the sample applicant {mask_id_number(id_number)} "
              "(generated photo, not a real person)", flush=True)
        with grpc.insecure_channel(address) as channel:
            stub = issuance_pb2_grpc.IssuanceServiceStub(channel)
            created = stub.CreateIssuance(ipb.CreateIssuanceRequest(
                client_request_id=str(uuid.uuid4()), id_number=id_number), timeout=30)
            last = ""
            for response in stub.WatchIssuance(ipb.WatchIssuanceRequest(
                    id=created.issuance.id), timeout=300):
                event = response.event
                last = ipb.IssuanceState.Name(event.state).removeprefix("ISSUANCE_STATE_")
                step = f"{STEPS.index(last) + 1}/{len(STEPS)}" if last in STEPS else "-"
                print(f"[{step:>5}] {last:<14} {event.message}", flush=True)
                if event.final:
                    break
            issuance = stub.GetIssuance(ipb.GetIssuanceRequest(id=created.issuance.id),
                                        timeout=10).issuance
        deadline = time.monotonic() + 15
        returns: list[dict] = []
        while time.monotonic() < deadline and not returns:
            returns = [r for r in sim.cms.ledger(photos=False)["returns"]
                       if r["record"]["id_number"] == id_number]
            time.sleep(0.1)
        sim.model.flush_output()
        pngs = sorted(str(p) for p in (sim.data_dir.parent / "printed").glob("*.png"))
    finally:
        running.stop()
    if last != "DONE":
        print(f"card not made: {last}: {issuance.reason}", file=sys.stderr)
        return 1
    record = dict(returns[0]["record"]) if returns else {}
    if record:
        record["id_number"] = mask_id_number(record["id_number"])
        account = record["bank_account"]
        record["bank_account"] = account[:6] + "*" * (len(account) - 10) + account[-4:]
    print(f"card made in {time.monotonic() - started:.1f} s", flush=True)
    print(json.dumps({"state": last, "issuance": issuance.id,
                      "preview": issuance.preview_path, "printed": pngs,
                      "cms_ledger_return": record}, ensure_ascii=False, indent=2))
    return 0 if record else 1
