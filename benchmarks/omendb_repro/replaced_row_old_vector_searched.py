"""Plain-Python reproduction (no memcycle): give 200 live ids new vectors with set() (set
replaces), and delete + re-insert 100 other ids with new vectors. A search with a row's *old*
vector must not return that id at distance ~0: the old vector is gone. Exit 1 when it does."""

import numpy as np
import omendb

rng = np.random.default_rng(0)
X = rng.standard_normal((1000, 32)).astype(np.float32)
Y = rng.standard_normal((300, 32)).astype(np.float32)
db = omendb.open(":memory:", dimensions=32, metric="l2")
db.set([{"id": str(i), "vector": X[i].tolist(), "metadata": {}} for i in range(1000)])
db.set([{"id": str(i), "vector": Y[i].tolist(), "metadata": {}} for i in range(200)])
db.delete([str(i) for i in range(200, 300)])
db.set([{"id": str(i), "vector": Y[i].tolist(), "metadata": {}} for i in range(200, 300)])


def by_old_vector(ids: range) -> int:
    n = 0
    for i in ids:
        hit = db.search(X[i].tolist(), 1)[0]
        n += int(hit["id"]) == i and float(hit["distance"]) < 1e-4
    return n


upsert, reinsert = by_old_vector(range(200)), by_old_vector(range(200, 300))
new_ok = sum(np.allclose(db.get(str(i))["vector"], Y[i], atol=1e-5) for i in range(300))
print(
    f"omendb {getattr(omendb, '__version__', '?')}: replaced by set(): {upsert}/200 found at "
    f"distance 0 by their old vector; deleted and re-inserted: {reinsert}/100; get returns the "
    f"new vector for {new_ok}/300"
)
raise SystemExit(1 if upsert or reinsert else 0)
