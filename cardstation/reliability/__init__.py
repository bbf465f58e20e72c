"""Proof at scale: the crash drill against `serve` and the fuzzers (make drill, make fuzz)."""
