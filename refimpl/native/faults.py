"""The C twin's fault catalogue: the faults of `refimpl.faults` that translate to C.

Same names as refimpl's catalogue. Each entry says what the bug does in C and what a run
must conclude: `verdict_plain` from a plain run (the signal and glibc's own message; a
SIGSEGV carries no message, so it stays `crash`; None where the outcome is not fixed),
`verdict_asan` from an AddressSanitizer build, `verdict_valgrind` from the plain build under
memcheck (None: not run there, the reason in `valgrind_outcome`; every fault runs there
now). Not here: keep-initialized, visited-not-reset and reinit-without-destroy, which live
in refimpl's Python object model (graph objects, visited-tag arrays) that the twin does
not have.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NativeFault:
    name: str
    summary: str
    verdict_plain: str | None  # None: a plain run has no fixed outcome (not run plain)
    plain_outcome: str  # what glibc does, as measured
    verdict_asan: str
    verdict_valgrind: str | None = None  # None: not run under valgrind
    asan_outcome: str = ""  # what ASan reports, as measured
    valgrind_outcome: str = ""  # what memcheck reports, as measured

    def verdict(self, mode: str = "plain") -> str | None:
        """The verdict a run under `mode` (plain, asan, valgrind) must reach."""
        if mode == "plain":
            return self.verdict_plain
        if mode == "asan":
            return self.verdict_asan
        if mode == "valgrind":
            return self.verdict_valgrind
        raise ValueError(f"unknown mode {mode!r}; expected plain, asan or valgrind")


CATALOGUE: dict[str, NativeFault] = {
    f.name: f
    for f in (
        NativeFault(
            "flat-buffer-double-free",
            "rc_clear() frees the flat buffer but keeps the handle; rc_init() 'frees before "
            "allocating' and frees it a second time.",
            "double-free",
            "SIGABRT: 'free(): double free detected in tcache 2' (flat.ids, 400 B, is freed first)",
            "double-free",
            verdict_valgrind="double-free",
            valgrind_outcome="InvalidFree: 'Address ... is 0 bytes inside a block of size 400 free'd' in rc_init, freed in rc_clear, allocated in tier_alloc",
            asan_outcome="'attempting double-free' in rc_init's free; freed in rc_clear, allocated in tier_alloc",
        ),
        NativeFault(
            "stale-segment-view",
            "rc_clear() frees the segments but keeps the search's cached views of them; the "
            "next search walks the freed vectors.",
            "crash",
            "SIGSEGV: the 1 MB segment blocks were mmapped and unmapped on free (the adapter "
            "pins glibc's mmap threshold); glibc has no message for a read",
            "use-after-free",
            verdict_valgrind="use-after-free",
            valgrind_outcome="InvalidRead: 'Invalid read of size 1; Address ... is 0 bytes inside "
            "a block of size 2,000 free'd' in scan (refimpl_c.c:552) from rc_search, freed in "
            "tier_free from free_segments, allocated in tier_alloc from to_segments; two later "
            "reads listed with it (the hang at exit that kept it out was glibc's freeres, "
            "see harness.sanitizers)",
            asan_outcome="'heap-use-after-free' READ in scan; freed in tier_free, allocated in tier_alloc",
        ),
        NativeFault(
            "uninitialized-slot-assign",
            "Storing a segment into a freshly grown slot of the segment table 'destroys' the "
            "garbage in it: free(0xa), the note's invalid pointer.",
            "crash",
            "SIGSEGV inside free(): glibc reads the chunk header below 0xa (an unmapped page) "
            "before its 'free(): invalid pointer' check can run",
            "invalid-free",
            verdict_valgrind="invalid-free",
            valgrind_outcome="InvalidFree: 'Address 0xa is not stack'd, malloc'd or (recently) free'd' in seg_store (refimpl_c.c:424); memcheck refuses the free and the run goes on",
            asan_outcome="SEGV at 0xfffffffffffffffa inside ASan's free (its header read below 0xa) from seg_store: memcycle's parser calls a SEGV in free an invalid-free",
        ),
        NativeFault(
            "sparse-map-recreate",
            "The id map's clear frees its blocks, builds a new map, and the old instance's "
            "destructor frees the same blocks again.",
            "double-free",
            "SIGABRT: 'double free or corruption (!prev)' (or '(top)'), in rc_clear",
            "double-free",
            verdict_valgrind="double-free",
            asan_outcome="'attempting double-free' in rc_clear; freed in idmap_free_blocks, allocated in idmap_init",
        ),
        NativeFault(
            "singleton-double-destroy",
            "rc_cleanup_global_db() runs the destructor but does not forget the database: "
            "the next cleanup destroys it again.",
            "double-free",
            "SIGABRT: 'free(): double free detected in tcache 2' at the second cleanup",
            "double-free",
            verdict_valgrind="double-free",
            asan_outcome="'attempting double-free' at the second cleanup; freed in destroy_in_place, allocated in tier_alloc",
        ),
        NativeFault(
            "flat-buffer-leak",
            "rc_clear() drops the flat buffer's handle without freeing it; rc_init() "
            "allocates a new one.",
            "leak",
            "no signal: memray's engine-attributed live bytes grow by the buffer every cycle",
            "leak",
            verdict_valgrind="leak",
            asan_outcome="LeakSanitizer (after the last close): direct leak of 1,536,000 B in 6 objects from tier_alloc",
        ),
        NativeFault(
            "migration-overflow",
            "A batch larger than the flat buffer's room is copied whole into the buffer before "
            "migrating: a heap write past the end of the block.",
            None,
            "no fixed outcome: glibc meets the damaged chunk header at the next malloc or free "
            "and what it says depends on the bytes and the neighbours (measured: 'double free "
            "or corruption (!prev)', 'malloc(): invalid size (unsorted)', 'free(): invalid next "
            "size (normal)', SIGSEGV inside malloc)",
            "buffer-overflow",
            verdict_valgrind="buffer-overflow",
            valgrind_outcome="InvalidWrite: 'Invalid write of size 8; Address ... is 0 bytes "
            "after a block of size 1,600 alloc'd' in to_flat (refimpl_c.c:393), the block "
            "allocated in tier_alloc; the copy runs on past memcheck's redzone into valgrind's "
            "own heap metadata and valgrind dies of SIGSEGV ('VALGRIND INTERNAL ERROR'): "
            "memcycle takes memcheck's report as the explanation of that death "
            "(sanitizer.tool_died)",
            asan_outcome="'heap-buffer-overflow' WRITE of size 960 in to_flat; the block allocated in tier_alloc",
        ),
    )
}

FAULT_NAMES: tuple[str, ...] = tuple(CATALOGUE)
