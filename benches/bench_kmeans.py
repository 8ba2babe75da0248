"""pytest-benchmark: fit time of valuescope.MiniBatchKMeans beside scikit-learn's, same settings.

    pytest benches/bench_kmeans.py --benchmark-only --benchmark-group-by=param:case

Each case is one group, so the table shows the two libraries side by side. The ratio and the
inertia comparison, with more cases (200,000 x 384, k = 500), are in benches/compare_kmeans.py.
"""

from __future__ import annotations

import pytest
from valuescope import MiniBatchKMeans

sk = pytest.importorskip("sklearn.cluster")

from compare_kmeans import embedding_like  # noqa: E402  (benches/ is on sys.path via rootdir)

CASES = {"3300x384:266": (3300, 384, 266), "100000x384:50": (100_000, 384, 50)}
_data: dict[str, object] = {}


def data(case: str):
    if case not in _data:
        n, d, _ = CASES[case]
        _data[case] = embedding_like(n, d)
    return _data[case]


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("impl", ["valuescope", "sklearn"])
def test_fit(benchmark, case, impl):
    x = data(case)
    k = CASES[case][2]
    cls = MiniBatchKMeans if impl == "valuescope" else sk.MiniBatchKMeans
    model = benchmark.pedantic(
        lambda: cls(k, batch_size=1024, n_init=1, random_state=0).fit(x), rounds=3, iterations=1
    )
    assert model.cluster_centers_.shape == (k, 384)
