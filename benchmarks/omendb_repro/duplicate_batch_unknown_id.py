"""Plain-Python reproduction (no memcycle): after one set() batch holding 100 ids twice,
searches must return only ids that were inserted, each at most once per answer. Exit 1 when an
answer holds another id or one id twice."""

import numpy as np
import omendb

rng = np.random.default_rng(0)
X = rng.standard_normal((900, 32)).astype(np.float32)
db = omendb.open(":memory:", dimensions=32, metric="l2")
db.set([{"id": str(i), "vector": X[i].tolist(), "metadata": {}} for i in range(500)])
ids = list(range(500, 800)) + list(range(500, 600))
db.set([{"id": str(i), "vector": X[500 + j].tolist(), "metadata": {}} for j, i in enumerate(ids)])
ours = {str(i) for i in range(800)}
answers = [[h["id"] for h in db.search(q.tolist(), 10)] for q in rng.standard_normal((100, 32))]
strange = sorted({i for a in answers for i in a} - ours)
twice = sum(len(a) != len(set(a)) for a in answers)
print(
    f"omendb {getattr(omendb, '__version__', '?')}: ids in answers never inserted: {strange[:5]}; "
    f"answers holding an id twice: {twice} of {len(answers)}"
)
raise SystemExit(1 if strange or twice else 0)
