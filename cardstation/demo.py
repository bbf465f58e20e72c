"""`cardstation demo`: one card made on a whole simulated station, each step shown.

Devices: the CS-220e simulator over TCP, the card simulator's chip coupled to the encoder's
vpcd slot, the PSAM simulator in the second slot, all through the real pcscd. The CMS and the
durable pipeline are later issues: the applicant is a built-in sample and the return record is
written to a JSON file.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

from cardstation.logs import mask_id_number

ENCODER_READER = "Virtual PCD 00 00"
PSAM_READER = "Virtual PCD 00 01"
KEY_RK = 0x4811  # PSAM selector of the read key (simulator proposal, ssc-chip.md 8.2 family)


def _step(n: int, total: int, state: str, text: str) -> None:
    print(f"[{n}/{total}] {state:<14} {text}", flush=True)


def _progress(step: str, fraction: float) -> None:
    if sys.stdout.isatty():
        print(f"\r    {step:<28} {fraction * 100:5.1f}%", end="", flush=True)
        if fraction >= 1:
            print()


def sample_applicant(id_number: str) -> dict[str, object]:
    from cardstation.simulators.photos import synthetic_portrait

    today = dt.date.today()
    sex = "1" if int(id_number[16]) % 2 else "2"
    return {
        "id_number": id_number, "name": "李秀英", "sex": sex, "nation": "01",
        "birth_date": id_number[6:14], "birthplace": id_number[:6],
        "card_number": "D2143569X", "issue_date": today.strftime("%Y%m%d"),
        "expiry_date": today.replace(year=today.year + 10).strftime("%Y%m%d"),
        "bank_name": "示例银行 (simulated)", "batch": "PCH-DEMO-0001",
        "photo": synthetic_portrait(int(id_number[-5:-1])),
    }  # fmt: skip


def run_demo(output: str, id_number: str, speed: float = 0.05) -> int:
    from cardstation.drivers.hiti import Printer
    from cardstation.drivers.hiti.errors import PrinterError
    from cardstation.drivers.pcsc.errors import CardStatusError, PcscError
    from cardstation.drivers.pcsc.psam import KEY_UK, Psam
    from cardstation.drivers.pcsc.readers import PcscContext
    from cardstation.drivers.pcsc.ssc import SscCard
    from cardstation.drivers.pcsc.transport import PcscTransport
    from cardstation.pcscd import ensure_running
    from cardstation.personalization.face import FaceData, render_back, render_front, render_preview
    from cardstation.personalization.rules import split_name_gbk
    from cardstation.personalization.validation import validate_application
    from cardstation.simulators.station import SimulatedStation

    total = 9
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    app = sample_applicant(id_number)
    _step(1, total, "FETCHED", f"sample applicant {mask_id_number(id_number)} "
          "(built in; the CMS simulator is a later issue)")
    findings = validate_application(
        id_number, name=str(app["name"]), card_number=str(app["card_number"]),
        photo=app["photo"], birth_date=str(app["birth_date"]), sex=str(app["sex"]),  # type: ignore[arg-type]
        nation=str(app["nation"]), region=str(app["birthplace"]),
    )  # fmt: skip
    if findings:
        print(json.dumps({"findings": [f.to_dict() for f in findings]}, ensure_ascii=False))
        print("stopped at preview: fix the application first", file=sys.stderr)
        return 1
    face = FaceData(str(app["name"]), id_number, str(app["card_number"]),
                    str(app["issue_date"]), str(app["bank_name"]), app["photo"])  # type: ignore[arg-type]
    preview = out / "preview.png"
    render_preview(face).save(preview)
    _step(2, total, "PREVIEWED", f"validation clean; preview at {preview}")

    ensure_running()
    printed_dir = out / "printed"
    with SimulatedStation(printed_dir, speed=speed) as station:
        printer = Printer.open(station.printer_url, poll_interval=0.05)
        try:
            ident, ribbon = printer.identity(), printer.ribbon()
            print(f"    printer {ident.model} fw {ident.firmware}, ribbon {ribbon.type_name} "
                  f"{ribbon.remaining} prints left", flush=True)
            printer.move_to_contact(_progress)
            with PcscContext() as ctx:
                ctx.wait_for_card(ENCODER_READER, timeout=10)
            _step(3, total, "FED", "card at the contact station, chip under the encoder")
            with PcscTransport(ENCODER_READER) as enc, PcscTransport(PSAM_READER) as sam:
                ssc, psam = SscCard(enc), Psam(sam)
                alg = ssc.select_ssse()
                code = ssc.read_item("card_id_code")
                city6 = code[:6]
                psam.select()
                terminal = psam.terminal_number()
                ssc.external_authenticate(0x0A, psam.external_auth_data(
                    KEY_RK, enc.atr, city6, ssc.get_challenge(8), alg))
                existing = ssc.read_item("id_number")
                if existing and existing != id_number:
                    raise RuntimeError("the chip already belongs to another holder")
                ssc.external_authenticate(0x04, psam.external_auth_data(
                    KEY_UK, enc.atr, city6, ssc.get_challenge(8), alg))
                tag09, tag4e = split_name_gbk(str(app["name"]))
                written: dict[str, str | bytes] = {
                    "id_number": id_number, "name": tag09, "name_ext": tag4e,
                    "sex": str(app["sex"]), "nation": str(app["nation"]),
                    "birthplace": str(app["birthplace"]), "birth_date": str(app["birth_date"]),
                    "issue_date": str(app["issue_date"]), "expiry_date": str(app["expiry_date"]),
                    "card_number": str(app["card_number"]),
                }  # fmt: skip
                for item, value in written.items():
                    ssc.write_item(item, value)
                _step(4, total, "CHIP_WRITTEN",
                      f"{len(written)} items written after PSAM external authentication")
                ssc.select_ssse()
                ssc.external_authenticate(0x0A, psam.external_auth_data(
                    KEY_RK, enc.atr, city6, ssc.get_challenge(8), alg))
                from cardstation.drivers.pcsc.ssc import ITEMS, encode_value

                for item, value in written.items():
                    if ssc.read_item_raw(item) != encode_value(ITEMS[item], value):
                        raise RuntimeError(f"read-back of {item} differs from what was written")
                pan = ssc.read_pan()
                atr = enc.atr.hex().upper()
            _step(5, total, "VERIFIED", "every item read back equal; bank account read")
            return_record = {
                "CardNum": app["card_number"], "CardID": id_number, "Name": app["name"],
                "ReleaseDate": app["issue_date"], "ValidDate": app["expiry_date"],
                "IdentifyNum": code, "CardATR": atr, "BankNum": pan, "PCH": app["batch"],
                "TerminalNumber": terminal,
            }  # fmt: skip
            return_path = out / "return.json"
            return_path.write_text(json.dumps(return_record, ensure_ascii=False, indent=2))
            _step(6, total, "RETURN_QUEUED", f"return record at {return_path} "
                  f"(card id code {code}, account {pan[:6]}...{pan[-4:]})")
            printer.print_faces(render_front(face), render_back(face), _progress)
            _step(7, total, "PRINTED", "front (YMCKO) and back printed")
            printer.eject(_progress)
            _step(8, total, "EJECTED", "card in the output hopper")
        except (PrinterError, PcscError, CardStatusError, RuntimeError, ValueError) as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            try:
                printer.reject()
                print("card moved to the reject box", file=sys.stderr)
            except PrinterError:
                pass
            return 1
        finally:
            printer.close()
        pngs = sorted(str(p) for p in printed_dir.glob("*.png"))
    _step(9, total, "DONE", f"card made in {time.monotonic() - started:.1f} s")
    print(json.dumps({"state": "DONE", "preview": str(preview), "printed": pngs,
                      "return": str(return_path)}, ensure_ascii=False))
    return 0
