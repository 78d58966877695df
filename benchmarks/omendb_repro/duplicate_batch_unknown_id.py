"""Plain-Python reproduction (no memcycle): after one set() batch holding 100 ids twice,
searches must return only ids that were inserted. Exit 1 when an answer holds another id."""

import numpy as np
import omendb

rng = np.random.default_rng(0)
X = rng.standard_normal((900, 32)).astype(np.float32)
db = omendb.open(":memory:", dimensions=32, metric="l2")
db.set([{"id": str(i), "vector": X[i].tolist(), "metadata": {}} for i in range(500)])
ids = list(range(500, 800)) + list(range(500, 600))
db.set([{"id": str(i), "vector": X[500 + j].tolist(), "metadata": {}} for j, i in enumerate(ids)])
ours = {str(i) for i in range(800)}
strange = sorted(
    {h["id"] for q in rng.standard_normal((100, 32)) for h in db.search(q.tolist(), 10)} - ours
)
print(f"omendb {getattr(omendb, '__version__', '?')}: ids in answers never inserted: {strange[:5]}")
raise SystemExit(1 if strange else 0)
