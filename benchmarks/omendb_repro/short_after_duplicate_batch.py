"""Plain-Python reproduction (no memcycle): one set() batch of 400 records whose last 100
repeat ids of the first 300 (other vectors). The store keeps one row per id (count 800 after
500 + 300 distinct), but searches for k=10 come back short. Exit 1 when answers are short
(the count is reported, judged by duplicate_batch_counted_twice.py)."""

import numpy as np
import omendb

rng = np.random.default_rng(0)
X = rng.standard_normal((900, 32)).astype(np.float32)
db = omendb.open(":memory:", dimensions=32, metric="l2")
db.set([{"id": str(i), "vector": X[i].tolist(), "metadata": {}} for i in range(500)])
ids = list(range(500, 800)) + list(range(500, 600))  # 100 ids twice in one batch
db.set([{"id": str(i), "vector": X[500 + j].tolist(), "metadata": {}} for j, i in enumerate(ids)])
live = len(db)
last_wins = sum(
    1 for j in range(300, 400) if np.allclose(db.get(str(ids[j]))["vector"], X[500 + j], atol=1e-5)
)
Q = rng.standard_normal((50, 32)).astype(np.float32)
got = [len(db.search(q.tolist(), 10)) for q in Q]
short = sum(g < 10 for g in got)
print(
    f"omendb {getattr(omendb, '__version__', '?')}: count {live} (800 expected); "
    f"last row won for {last_wins}/100 repeated ids; {sum(got)} of {10 * len(Q)} hits, "
    f"{short} of {len(Q)} short"
)
raise SystemExit(1 if short else 0)
