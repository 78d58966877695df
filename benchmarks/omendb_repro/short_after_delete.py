"""Plain-Python reproduction (no memcycle): after deleting 30% of 1,000 rows, searches for
k=10 return fewer than 10 hits although 700 rows are live. Prints the counts; exit 1 when
the bug shows, 0 when every answer is full."""

import numpy as np
import omendb

rng = np.random.default_rng(0)
X = rng.standard_normal((1000, 32)).astype(np.float32)
db = omendb.open(":memory:", dimensions=32, metric="l2")
db.set([{"id": str(i), "vector": X[i].tolist(), "metadata": {}} for i in range(1000)])
Q = rng.standard_normal((50, 32)).astype(np.float32)
before = sum(len(db.search(q.tolist(), 10)) < 10 for q in Q)  # control: no delete yet
db.delete(
    [str(i) for i in range(0, 1000, 10)]
    + [str(i) for i in range(1, 1000, 10)]
    + [str(i) for i in range(2, 1000, 10)]
)  # 300 ids
live = len(db)
got = [len(db.search(q.tolist(), 10)) for q in Q]
short = sum(g < 10 for g in got)
print(
    f"omendb {getattr(omendb, '__version__', '?')}: {live} live rows; "
    f"{sum(got)} of {10 * len(Q)} hits returned, {short} of {len(Q)} answers short "
    f"(before the delete: {before} short)"
)
raise SystemExit(1 if short else 0)
