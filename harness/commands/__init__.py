"""memcycle's commands, one module each (`memcycle.commands.run`, `.gate`, `.faults`, ...).

Each module defines `COMMAND` (`base.Command`): its parser and its run function. `REGISTRY`
names them in the order `memcycle --help` lists them, with their one-line help; the
dispatcher (`memcycle.cli`) imports only the module of the command being run. Helpers
shared by several commands live below them (`base`, `common`) and never import a command.
"""

from __future__ import annotations

# name -> (module, one-line help)
REGISTRY: dict[str, tuple[str, str]] = {
    "run": ("memcycle.commands.run", "run scenarios and judge them"),
    "init": (
        "memcycle.commands.init",
        "scaffold an adapter, a cycle table, a pytest entry and CI notes into a project",
    ),
    "merge": ("memcycle.commands.merge", "merge the reports of several runs (shards) into one"),
    "warmup": ("memcycle.commands.warmup", "compile refimpl's Numba kernels ahead (CI)"),
    "fuzz": ("memcycle.commands.fuzz", "generate cycle tables until one fails, then shrink it"),
    "shrink": (
        "memcycle.commands.shrink",
        "shrink a failing run or scenario to the smallest table that fails the same way",
    ),
    "list": ("memcycle.commands.listing", "show bundled scenarios, engines and faults"),
    "report": (
        "memcycle.commands.report",
        "re-render a run folder's report.json (md, html, junit)",
    ),
    "gate": (
        "memcycle.commands.gate",
        "compare a run with the baseline; non-zero exit on regression",
    ),
    "faults": ("memcycle.commands.faults", "run the fault matrix (every fault x allocator)"),
}
