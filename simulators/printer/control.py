"""Simulator control requests (JSON objects) mapped onto the model's Python API.

Used by the server's line-based control channel: one JSON object per line in, one per line out.
Requests: {"op": "state"}, {"op": "load_cards", "count": 2, "orientation": "face_down"},
{"op": "inject", "fault": "jam", "at": "print"}, {"op": "clear", "fault": "cover_open"},
{"op": "clear_faults"}, {"op": "power_cycle"}, {"op": "set_ribbon", "type": 0, "remaining": 5},
{"op": "set_sensor", "offset_mm": 0.3, "dirt": 0.1}, {"op": "clean_sensor"},
{"op": "empty_reject_box"}, {"op": "print_log"}. Replies: {"ok": true, ...} or
{"ok": false, "error": "..."}.
"""

from __future__ import annotations

from typing import Any

from cardstation.simulators.printer.model import PrinterModel


def handle(model: PrinterModel, request: dict[str, Any]) -> dict[str, Any]:
    """Apply one control request; never raises."""
    try:
        op = request.get("op")
        args = {k: v for k, v in request.items() if k != "op"}
        if op == "state":
            return {"ok": True, "state": model.snapshot()}
        if op == "load_cards":
            count = int(args.get("count", 1))
            cards = model.load_cards(count, args.get("orientation", "right_way"))
            return {"ok": True, "cards": [c.serial for c in cards]}
        if op == "inject":
            fault = str(args.pop("fault"))
            model.inject(fault, **args)
            return {"ok": True}
        if op == "clear":
            model.clear(str(args["fault"]))
            return {"ok": True}
        simple = {
            "clear_faults": model.clear_faults,
            "power_cycle": model.power_cycle,
            "clean_sensor": model.clean_sensor,
            "empty_reject_box": model.empty_reject_box,
            "unplug_printer": model.unplug_printer,
            "plug_printer": model.plug_printer,
            "unplug_encoder": model.unplug_encoder,
            "plug_encoder": model.plug_encoder,
        }
        if op in simple:
            simple[op]()
            return {"ok": True}
        if op == "set_ribbon":
            return {"ok": True, "ribbon": model.set_ribbon(**args).to_dict()}
        if op == "set_sensor":
            model.set_sensor(args.get("offset_mm"), args.get("dirt"))
            return {"ok": True}
        if op == "print_log":
            return {"ok": True, "print_log": [r.to_dict() for r in model.print_log]}
        return {"ok": False, "error": f"unknown op {op!r}"}
    except (KeyError, TypeError, ValueError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
