"""Writes kmeans_v1_pickles.pkl: MiniBatchKMeans and KMeans pickled by the first pickle format
(the state as a dict of fields, before the serde-encoded format 2), with what each model
answered then, so that tests/test_kmeans.py can check old pickles still load and behave the
same. Run once with a build of the first format; kept for the record."""

import pickle
from pathlib import Path

import numpy as np
from valuescope._core import KMeans, MiniBatchKMeans

rng = np.random.default_rng(5)
x = (rng.normal(size=(400, 4)) + np.repeat(np.eye(4) * 6, 100, axis=0)).astype(np.float64)
out = {"x": x}
for dtype in (np.float32, np.float64):
    name = np.dtype(dtype).name
    xs = x.astype(dtype)
    mb = MiniBatchKMeans(4, random_state=1, batch_size=64).partial_fit(xs[:200])
    blob = pickle.dumps(mb)
    mb.partial_fit(xs[200:])  # what the model does next, random stream included
    out[f"minibatch_{name}"] = (blob, mb.cluster_centers_.copy(), mb.predict(xs))
    km = KMeans(4, n_init=2, random_state=1).fit(xs)
    out[f"kmeans_{name}"] = (pickle.dumps(km), km.cluster_centers_.copy(), km.predict(xs))
out["unfitted"] = (pickle.dumps(MiniBatchKMeans(3, batch_size=32)), pickle.dumps(KMeans(5)))
Path(__file__).with_name("kmeans_v1_pickles.pkl").write_bytes(pickle.dumps(out))
