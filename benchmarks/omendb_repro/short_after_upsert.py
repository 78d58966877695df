"""Plain-Python reproduction (no memcycle): set() again 200 of 1,000 live ids with new
vectors (set replaces a row), then search k=10: answers come back short although 1,000
rows are live (and count() says 1,000). Exit 1 when the bug shows."""

import numpy as np
import omendb

rng = np.random.default_rng(0)
X = rng.standard_normal((1000, 32)).astype(np.float32)
db = omendb.open(":memory:", dimensions=32, metric="l2")
db.set([{"id": str(i), "vector": X[i].tolist(), "metadata": {}} for i in range(1000)])
Y = rng.standard_normal((200, 32)).astype(np.float32)
db.set([{"id": str(i), "vector": Y[i].tolist(), "metadata": {}} for i in range(200)])
live = len(db)
stale_vec = sum(1 for i in range(200) if not np.allclose(db.get(str(i))["vector"], Y[i], atol=1e-5))
Q = rng.standard_normal((50, 32)).astype(np.float32)
got = [len(db.search(q.tolist(), 10)) for q in Q]
short = sum(g < 10 for g in got)
print(
    f"omendb {getattr(omendb, '__version__', '?')}: count {live}; {stale_vec} replaced rows "
    f"still read old vectors; {sum(got)} of {10 * len(Q)} hits, {short} of {len(Q)} short"
)
raise SystemExit(1 if short or stale_vec or live != 1000 else 0)
