"""Files `memcycle init` writes into a user's project (read with importlib.resources)."""
