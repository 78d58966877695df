"""Example adapters for `memcycle run --engine examples.<module>:<factory>` (run from the repo root)."""
