"""APDU round trips through pcscd + vpcd: our driver against bare pyscard, same card, same run.

The card is the simulated social security card in the encoder's vpcd slot; the APDU is a READ
RECORD of the card identification code (a typical personalization read). Runs alternate between
the two clients in blocks so drift on a busy machine hits both alike.
"""

from __future__ import annotations

import statistics
import time

APDU = bytes.fromhex("00B2012812")  # read EF05 tag 01 (card identification code) by SFI


def run(reader: str = "Virtual PCD 00 00", port: int = 35963, rounds: int = 6,
        per_round: int = 200) -> list[dict]:
    from smartcard.System import readers

    from cardstation.drivers.pcsc.readers import PcscContext
    from cardstation.drivers.pcsc.transport import PcscTransport
    from cardstation.simulators.card import make_card
    from cardstation.simulators.vpcd.link import VpcdLink

    link = VpcdLink(make_card("blank3"), port=port).start()
    try:
        with PcscContext() as ctx:
            ctx.wait_for_card(reader, timeout=10)
        select = bytes.fromhex("00A404000F7378312E73682EC9E7BBE1B1A3D5CF")
        ours = PcscTransport(reader)
        ours.connect()
        ours.transmit(select)
        pyscard_reader = next(r for r in readers() if str(r) == reader)
        bare = pyscard_reader.createConnection()
        bare.connect()
        apdu_list = list(APDU)
        driver_us: list[float] = []
        bare_us: list[float] = []
        for _ in range(rounds):
            for _ in range(per_round):
                t0 = time.perf_counter()
                ours.transmit(APDU)
                driver_us.append((time.perf_counter() - t0) * 1e6)
            for _ in range(per_round):
                t0 = time.perf_counter()
                bare.transmit(apdu_list)
                bare_us.append((time.perf_counter() - t0) * 1e6)
        bare.disconnect()
        ours.close()
    finally:
        link.stop()
    d, b = statistics.median(driver_us), statistics.median(bare_us)
    ctx_info = {"reader": reader, "apdu": APDU.hex().upper(), "samples": len(driver_us),
                "path": "pyscard -> pcscd -> vpcd -> card simulator"}
    return [
        {"name": "pcsc.apdu_median_us.driver", "value": round(d, 1), "unit": "us", **ctx_info},
        {"name": "pcsc.apdu_median_us.pyscard", "value": round(b, 1), "unit": "us", **ctx_info},
        {"name": "pcsc.apdu_ratio", "value": round(d / b, 3), "unit": "ratio",
         "target": "<= 1.3", **ctx_info},
    ]
