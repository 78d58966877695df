"""Plain-Python reproduction (no memcycle): a persistent store of 800 rows, every 4th id
deleted, flushed, closed and opened again. Each live row, searched with its own vector (k=1),
should come back as itself at distance 0, and a k=10 search must return 10 hits (600 rows are
live). Exit 1 when some rows are not found (the ids are mixed up) or answers are short."""

import gc
import os
import tempfile

import numpy as np
import omendb

rng = np.random.default_rng(0)
X = rng.standard_normal((800, 32)).astype(np.float32)
path = os.path.join(tempfile.mkdtemp(), "store")
if hasattr(omendb, "create"):  # 0.0.37: open() refuses a path with no store
    db = omendb.create(path, {"metric": "l2", "dense": {"dim": 32}})
else:
    db = omendb.open(path, dimensions=32, metric="l2")
db.set([{"id": str(i), "vector": X[i].tolist(), "metadata": {}} for i in range(800)])
db.delete([str(i) for i in range(0, 800, 4)])
live = [i for i in range(800) if i % 4]


def not_found() -> int:
    return sum(int(db.search(X[i].tolist(), 1)[0]["id"]) != i for i in live)


before = not_found()
db.flush()
if hasattr(db, "close"):
    db.close()
del db
gc.collect()
db = omendb.open(path, dimensions=32, metric="l2")
after = not_found()
hit = db.search(X[live[0]].tolist(), 1)[0]
Q = rng.standard_normal((50, 32)).astype(np.float32)
short = sum(len(db.search(q.tolist(), 10)) < 10 for q in Q)
print(
    f"omendb {getattr(omendb, '__version__', '?')}: count {len(db)} (600 live); "
    f"{before} of 600 live rows not found by their own vector before reopen, {after} after "
    f"(row {live[0]} -> id {hit['id']} at {hit['distance']:.3g}); after reopen {short} of 50 "
    "k=10 answers short"
)
raise SystemExit(1 if after or short else 0)
