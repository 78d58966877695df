"""Plain-Python reproduction (no memcycle): a persistent store of 800 rows (metadata tag =
id % 4); 200 random ids deleted, the store closed and opened again; then the rows with tag 1
deleted by filter, compact() (where the release has it), closed and opened again. count()
must say how many rows are live after each reopen, and answers may hold only live ids.
Exit 1 when a reopened store counts otherwise or answers with other ids."""

import gc
import os
import tempfile

import numpy as np
import omendb

rng = np.random.default_rng(0)
X = rng.standard_normal((800, 32)).astype(np.float32)
path = os.path.join(tempfile.mkdtemp(), "store")
if hasattr(omendb, "create"):
    db = omendb.create(path, {"metric": "l2", "dense": {"dim": 32}})
else:
    db = omendb.open(path, dimensions=32, metric="l2")


def reopen(db: object) -> object:
    db.flush()
    if hasattr(db, "close"):
        db.close()
    del db
    gc.collect()
    return omendb.open(path, dimensions=32, metric="l2")


for lo in range(0, 800, 200):
    db.set(
        [
            {"id": str(i), "vector": X[i].tolist(), "metadata": {"tag": i % 4}}
            for i in range(lo, lo + 200)
        ]
    )
gone = {int(i) for i in rng.choice(800, 200, replace=False)}
db.delete([str(i) for i in sorted(gone)])
db = reopen(db)
first = len(db)
(db.delete_by_filter if hasattr(db, "delete_by_filter") else db.delete_where)({"tag": 1})
if hasattr(db, "compact"):
    db.compact()
before = len(db)
db = reopen(db)
live = {str(i) for i in range(800) if i % 4 != 1 and i not in gone}
answered = {h["id"] for q in rng.standard_normal((50, 32)) for h in db.search(q.tolist(), 10)}
dead = sorted(answered - live, key=str)
print(
    f"omendb {getattr(omendb, '__version__', '?')}: count {first} after the 1st reopen "
    f"({800 - len(gone)} live); after filter delete + compact {before}, after the 2nd reopen "
    f"{len(db)} ({len(live)} live); ids in answers not live: {len(dead)} {dead[:4]}"
)
raise SystemExit(1 if first != 800 - len(gone) or len(db) != len(live) or dead else 0)
