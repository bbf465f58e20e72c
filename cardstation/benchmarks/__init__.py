"""Benchmarks behind `make bench` / `cardstation bench`: each yields JSON-able figure dicts
`{"name": "area.metric", "value": number, "unit": "...", ...context}`."""
