"""Plain-Python reproduction (no memcycle): one set() batch of 400 records whose last 100
repeat ids of the first 300. 500 + 300 distinct ids are stored, so count() must be 800;
exit 1 when it is not (a repeated id counted twice)."""

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
print(
    f"omendb {getattr(omendb, '__version__', '?')}: count {live} after 800 distinct ids "
    f"(100 of them twice in one batch); last row won for {last_wins}/100 repeated ids"
)
raise SystemExit(1 if live != 800 else 0)
