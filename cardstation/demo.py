"""`cardstation demo`: a whole simulated station making one card through the gRPC API.

Starts pcscd if needed and `serve --simulate` in this process: the CMS (HTTP), the CS-220e
(TCP) whose contact station feeds the encoder's vpcd slot, the card's chip and the PSAM behind
the real pcscd, and the production station behind the gRPC server. Then, as any operator
console would, it creates the job over a real port, watches it step by step, and prints where
the preview and printed faces are and the CMS ledger's return. Exit 0 only if the card is DONE.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from cardstation.drivers.redaction import mask_account, mask_id_number

STEPS = ("QUEUED", "FETCHED", "PREVIEWED", "FED", "CHIP_WRITTEN", "VERIFIED", "RETURN_QUEUED",
         "PRINTED", "EJECTED", "DONE")


def run_demo(output: str, id_number: str, speed: float = 0.05) -> int:
    import grpc

    from cardstation.commands.serve import start_server
    from cardstation.config import Config
    from cardstation.protos.cardstation.v1 import issuance_pb2 as ipb
    from cardstation.protos.cardstation.v1 import issuance_pb2_grpc

    started = time.monotonic()
    # A demo is a new simulated station each time: its CMS starts empty, so yesterday's journal
    # (a card already made for the sample applicant) must not be carried over.
    for leftover in ("station", "printed"):
        shutil.rmtree(Path(output) / leftover, ignore_errors=True)
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
            created = stub.CreateIssuance(ipb.CreateIssuanceRequest(id_number=id_number),
                                          timeout=30)
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
        record["bank_account"] = mask_account(record["bank_account"])
    print(f"card made in {time.monotonic() - started:.1f} s", flush=True)
    print(json.dumps({"state": last, "issuance": issuance.id,
                      "preview": issuance.preview_path, "printed": pngs,
                      "cms_ledger_return": record}, ensure_ascii=False, indent=2))
    return 0 if record else 1


def run_console_demo(output: str, listen: str, speed: float = 0.05) -> int:
    """A simulated station and its console, running until Ctrl-C (SIGINT) or SIGTERM."""
    from dataclasses import replace

    from cardstation.commands.console import serve_console
    from cardstation.commands.serve import start_server
    from cardstation.config import Config
    from cardstation.console.security import InsecureListen, check_listen
    from cardstation.server.auth import Role, TokenStore

    host, _, port = listen.rpartition(":")
    try:
        check_listen(host or "127.0.0.1", False)
        port_number = int(port)
    except (InsecureListen, ValueError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    for leftover in ("station", "printed"):
        shutil.rmtree(Path(output) / leftover, ignore_errors=True)
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    store = TokenStore()
    token, _ = store.issue("demo-operator", Role.OPERATOR, ttl_seconds=7 * 24 * 3600)
    store.save(folder / "tokens.json")
    config = Config()
    config = replace(config, server=replace(config.server,
                                            tokens_file=str(folder / "tokens.json")))
    print("starting the simulated station ...", flush=True)
    running = start_server(config, "127.0.0.1:0", simulate=True, speed=speed, blank_cards=20,
                           folder=output)
    try:
        sim = running.simulated
        print(f"station server 127.0.0.1:{running.port}; sample applicants: "
              f"{', '.join(sim.cms.samples['ready'][:3])} (generated, not real people)",
              flush=True)
        print(f"login token (operator, valid 7 days): {token}", flush=True)
        serve_console(host or "127.0.0.1", port_number, f"127.0.0.1:{running.port}")
    finally:
        print("stopping the simulated station", flush=True)
        running.stop()
    return 0
