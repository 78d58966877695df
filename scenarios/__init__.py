"""The bundled cycle tables (`*.toml`, `faults/*.toml`) and their SCHEMA.md.

Installed as `memcycle.scenarios`; memcycle finds them with `importlib.resources`, never through
the working directory.
"""
