"""Imported by a test engine at its first `open`: a module whose import allocates 4 MiB.

memray sees the allocation under the engine's `import` line; it belongs to this
module, not to the engine (`harness.analysis` top_live must not list it).
"""

BALLAST = bytearray(4 << 20)
