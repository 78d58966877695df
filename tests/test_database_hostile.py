"""refimpl under hostile use: copies, threads and absurd sizes (issue: hostile input)."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys

import numpy as np
import pytest
from memcycle.refimpl import DB
from memcycle.refimpl.errors import CopyRefusedError, InvalidInputError
from memcycle.refimpl.inputs import MAX_RESULT_CELLS

ALLOCATORS = ("numpy", "checked", "raw")


def _db(allocator: str, n: int = 200, dim: int = 8) -> DB:
    db = DB(allocator=allocator, buffer_size=64, segment_threshold=512, M=8, ef_construction=32)
    rng = np.random.default_rng(1)
    db.add_batch(rng.standard_normal((n, dim)).astype(np.float32), ids=list(range(n)))
    return db


@pytest.mark.parametrize("allocator", ALLOCATORS)
@pytest.mark.parametrize(
    "duplicate",
    [copy.copy, copy.deepcopy, lambda db: pickle.loads(pickle.dumps(db))],
    ids=["copy", "deepcopy", "pickle"],
)
def test_a_copy_is_refused_and_the_original_keeps_its_rows(allocator, duplicate) -> None:
    db = _db(allocator)
    with pytest.raises(CopyRefusedError, match=r"cannot be (copied|pickled)"):
        duplicate(db)
    assert db.count() == 200
    assert db.search(np.zeros(8, np.float32), limit=3)
    db.close()
    assert db.allocator.live() == []


@pytest.mark.parametrize("allocator", ALLOCATORS)
def test_a_limit_far_above_the_row_count_is_sized_by_the_rows(allocator) -> None:
    db = _db(allocator)
    hits = db.search(np.zeros(8, np.float32), limit=10**9)
    assert len(hits) == 200
    assert len(db.search(np.zeros(8, np.float32), limit=2**63)) == 200
    ids, dists = db.search_batch(np.zeros((2, 8), np.float32), limit=1000)
    assert ids.shape == dists.shape == (2, 1000)
    assert (ids[:, :200] >= 0).all() and (ids[:, 200:] == -1).all()
    assert np.isinf(dists[:, 200:]).all()
    db.close()


def test_a_search_batch_whose_padding_is_absurd_is_refused_by_name() -> None:
    db = _db("numpy")
    with pytest.raises(InvalidInputError, match="lower the limit") as info:
        db.search_batch(np.zeros((4, 8), np.float32), limit=10**9)
    assert f"{MAX_RESULT_CELLS:,}" in str(info.value)
    db.close()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"buffer_size": 10**9}, "buffer_size"),
        ({"M": 10**6}, "M"),
        ({"ef_search": 10**9}, "ef_search"),
        ({"ef_construction": 10**9}, "ef_construction"),
        ({"dimension": 10**9}, "dimension"),
    ],
)
def test_absurd_sizing_parameters_are_refused_before_any_allocation(kwargs, name) -> None:
    with pytest.raises(InvalidInputError, match=f"{name} must be at most"):
        DB(allocator="checked", **kwargs)


STRESS = """
import sys, threading
import numpy as np
from memcycle.refimpl import DB

allocator = sys.argv[1]
db = DB(allocator=allocator, buffer_size=32, segment_threshold=256, M=8, ef_construction=24)
rng = np.random.default_rng(7)
dim = 8
problems = []
stop = threading.Event()

def writer():
    try:
        for cycle in range(12):
            base = cycle * 1000
            for b in range(4):
                x = rng.standard_normal((48, dim)).astype(np.float32)
                db.add_batch(x, ids=list(range(base + b * 48, base + (b + 1) * 48)))
            db.delete_batch(list(range(base, base + 30)))
            if cycle % 3 == 2:
                db.clear()
    except BaseException as exc:
        problems.append(repr(exc))
    finally:
        stop.set()

def reader():
    q = np.zeros((4, dim), np.float32)
    try:
        while not stop.is_set():
            ids, dists = db.search_batch(q, limit=5)
            assert ids.shape == (4, 5) and dists.shape == (4, 5)
            for row in ids.tolist():
                hits = [i for i in row if i >= 0]
                assert len(hits) == len(set(hits)), row
            db.search(q[0], limit=3)
            try:
                db.get(1000)
            except KeyError:
                pass
    except BaseException as exc:
        problems.append(repr(exc))

threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
for t in threads:
    t.start()
for t in threads:
    t.join(120)
assert not any(t.is_alive() for t in threads), "a thread hung"
assert problems == [], problems[:3]
db.close()
assert db.allocator.live() == []
print("stress ok")
"""


@pytest.mark.parametrize("allocator", ALLOCATORS)
def test_one_writer_and_one_reader_on_one_db_stay_consistent(allocator) -> None:
    """A writer adds, deletes and clears while a reader searches and gets: no crash, no error,
    every answer well formed, nothing live after close. In a child: unserialized access
    segfaults (raw/checked) or aborts in glibc (numpy), which must fail this test, not pytest."""
    res = subprocess.run(
        [sys.executable, "-c", STRESS, allocator], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0 and "stress ok" in res.stdout, res.stderr[-2000:]


def _fail_on(monkeypatch, target: object, name: str) -> None:
    def boom(*args, **kwargs):
        raise MemoryError("injected: out of memory")

    monkeypatch.setattr(target, name, boom)


@pytest.mark.parametrize("allocator", ALLOCATORS)
@pytest.mark.parametrize("where", ["graph", "flat-migration", "segments", "id-map"])
def test_a_batch_that_runs_out_of_memory_half_way_changes_nothing(
    allocator, where, monkeypatch
) -> None:
    from memcycle.refimpl.hnsw import HNSWIndex
    from memcycle.refimpl.segmented import SegmentedHNSW
    from memcycle.refimpl.sparse_map import SparseMap

    db = _db(allocator, n=40)  # 40 rows sit in the flat buffer (buffer_size 64)
    rng = np.random.default_rng(5)
    size = {"graph": 100, "flat-migration": 30, "segments": 600, "id-map": 100}[where]
    x = rng.standard_normal((size, 8)).astype(np.float32)
    new_ids = list(range(1000, 1000 + size))
    target = {"graph": HNSWIndex, "flat-migration": HNSWIndex, "segments": SegmentedHNSW}
    if where == "id-map":
        original = SparseMap.put_many

        def put_then_fail(self, keys, values, **kw):
            original(self, keys, values, **kw)
            raise MemoryError("injected: out of memory")

        monkeypatch.setattr(SparseMap, "put_many", put_then_fail)
    else:
        _fail_on(monkeypatch, target[where], "add")
    with pytest.raises(MemoryError):
        db.add_batch(x, ids=new_ids)
    monkeypatch.undo()
    assert db.count() == 40
    for i in (1000, 1000 + size - 1):
        with pytest.raises(KeyError):
            db.get(i)
    found = {h.id for h in db.search(np.zeros(8, np.float32), limit=100)}
    assert found == set(range(40))
    db.add_batch(x, ids=new_ids)  # the same ids can be added once memory is back
    assert db.count() == 40 + size
    db.close()
    assert db.allocator.live() == []


@pytest.mark.parametrize("allocator", ALLOCATORS)
def test_an_upsert_that_runs_out_of_memory_keeps_the_old_rows(allocator, monkeypatch) -> None:
    from memcycle.refimpl.hnsw import HNSWIndex

    db = _db(allocator, n=300)
    old = db.get(5)[0]
    x = np.full((100, 8), 9.0, np.float32)
    _fail_on(monkeypatch, HNSWIndex, "add")
    with pytest.raises(MemoryError):
        db.upsert_batch(x, ids=list(range(100)))
    monkeypatch.undo()
    assert db.count() == 300
    assert np.array_equal(db.get(5)[0], old)
    assert {h.id for h in db.search(old, limit=1)} == {5}
    db.upsert_batch(x, ids=list(range(100)))
    assert db.count() == 300 and np.array_equal(db.get(5)[0], x[5])
    db.close()
    assert db.allocator.live() == []


RLIMIT = """
import resource, sys
import numpy as np
from memcycle.refimpl import DB

allocator = sys.argv[1]
rng = np.random.default_rng(3)
# load every kernel first: LLVM aborts (std::bad_alloc) when it runs out of address space,
# which no engine can turn into an exception; the batch's own allocations are the subject
# (small batches: a freed big one would leave heap room the limit cannot see)
warm = DB(allocator=allocator, buffer_size=100, M=8, ef_construction=32, num_threads=1)
warm.add_batch(rng.standard_normal((30, 128)).astype(np.float32), ids=list(range(30)))
warm.add_batch(rng.standard_normal((100, 128)).astype(np.float32), ids=list(range(30, 130)))
warm.upsert_batch(rng.standard_normal((30, 128)).astype(np.float32), ids=list(range(30)))
warm.search(np.zeros(128, np.float32), limit=5)
warm.delete_batch(list(range(100, 130)))  # a failed batch's undo deletes its ids again
warm.close()
# one thread: a thread pool started under the limit dies in libgomp, not in the batch
db = DB(allocator=allocator, buffer_size=1000, M=8, ef_construction=32, num_threads=1)
db.add_batch(rng.standard_normal((300, 128)).astype(np.float32), ids=list(range(300)))
old = db.get(7)[0]
x = rng.standard_normal((3000, 128)).astype(np.float32)
ids = list(range(10_000, 13_000))
soft, hard = resource.getrlimit(resource.RLIMIT_AS)


def attempt(op, headroom):
    vm = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (vm + headroom, hard))
    try:
        op()
        return False
    except MemoryError:
        return True
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


failed = 0
# a limit just above the process, then wider: the batch runs out at a different point each time
for headroom in (64 << 10, 256 << 10, 1 << 20, 2 << 20, 4 << 20, 8 << 20, 16 << 20):
    if not attempt(lambda: db.upsert_batch(x[:300], ids=list(range(300))), headroom):
        break
    failed += 1
    assert db.count() == 300, db.count()
    assert np.array_equal(db.get(7)[0], old), "an upsert that failed lost the old row"
for headroom in (64 << 10, 256 << 10, 1 << 20, 2 << 20, 4 << 20, 8 << 20, 16 << 20):
    if not attempt(lambda: db.add_batch(x, ids=ids), headroom):
        break
    failed += 1
    assert db.count() == 300, db.count()
assert failed, "the limit never bit: no MemoryError"
if db.count() == 300:
    db.add_batch(x, ids=ids)
assert db.count() == 3300
db.close()
live = db.allocator.live()
assert live == [], f"blocks left after close: {sorted(b.label for b in live)}"
print("rlimit ok", failed)
"""


@pytest.mark.parametrize("allocator", ALLOCATORS)
def test_batches_under_an_address_space_limit_are_atomic(allocator) -> None:
    """RLIMIT_AS a few MB above the process: add_batch/upsert_batch raise MemoryError and the
    DB holds exactly its rows before (then the same ids can be added)."""
    res = subprocess.run(
        [sys.executable, "-c", RLIMIT, allocator], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0 and "rlimit ok" in res.stdout, (res.stdout + res.stderr)[-3000:]


class _FailingAllocator:
    """A checked allocator whose n-th alloc raises MemoryError (and every one after it, until
    `heal()`): out of memory at every point a batch allocates."""

    def __init__(self, fail_at: int) -> None:
        from memcycle.refimpl.alloc import CheckedAllocator

        self._inner = CheckedAllocator()
        self.name = "failing-checked"
        self.calls = 0
        self.fail_at = fail_at
        self.healed = False

    def alloc(self, label, shape, dtype, *, zero=True):
        self.calls += 1
        if not self.healed and self.calls >= self.fail_at:
            raise MemoryError(f"injected at alloc #{self.calls} ({label})")
        return self._inner.alloc(label, shape, dtype, zero=zero)

    def heal(self) -> None:
        self.healed = True

    def __getattr__(self, name):
        return getattr(self._inner, name)


@pytest.mark.parametrize("fail_at", range(1, 40, 3))
def test_out_of_memory_at_any_allocation_leaks_nothing_and_frees_nothing_twice(fail_at) -> None:
    """Every allocation point of initialize, slot growth, id-map rehash, flat buffer, graph
    growth and segments fails once in turn: the batch raises, the DB keeps its rows, and close
    leaves no block live and no violation (a half-built structure used to leak its first
    blocks, and a graph's visited tags were freed before their replacement was allocated)."""
    alloc = _FailingAllocator(fail_at)
    db = DB(allocator=alloc, buffer_size=50, segment_threshold=400, M=8, ef_construction=16)
    rng = np.random.default_rng(fail_at)
    held = 0
    for n in (30, 60, 200, 500):
        ids = list(range(held + 10_000, held + 10_000 + n))
        try:
            db.add_batch(rng.standard_normal((n, 8)).astype(np.float32), ids=ids)
            held += n
        except MemoryError:
            assert db.count() == held
            break
    alloc.heal()
    db.add_batch(rng.standard_normal((20, 8)).astype(np.float32), ids=list(range(20)))
    assert db.count() == held + 20
    db.close()
    assert alloc.live() == []
    assert alloc.snapshot()["violations"] == []


@pytest.mark.parametrize("call", ["add_batch", "upsert_batch"])
def test_a_batch_whose_answer_cannot_be_built_adds_nothing(call, monkeypatch) -> None:
    """The ids list a batch returns is built before its rows go in: a MemoryError there
    (seen under an address-space limit) must not report a failure for rows that were added."""
    from memcycle.refimpl import database

    db = _db("checked", n=40)
    x = np.full((5, 8), 3.0, np.float32)

    def out_of_memory(ids):  # type: ignore[no-untyped-def]
        raise MemoryError("answer")

    monkeypatch.setattr(database, "_batch_answer", out_of_memory)
    with pytest.raises(MemoryError):
        getattr(db, call)(x, ids=list(range(1000, 1005)))
    monkeypatch.undo()
    assert db.count() == 40
    with pytest.raises(KeyError):
        db.get(1000)
    assert getattr(db, call)(x, ids=list(range(1000, 1005))) == list(range(1000, 1005))
    db.close()
