"""The taxonomy stage: embeddings, the value tree, task clusters, the namer, the comparison with the
published taxonomy, and killed runs."""

from __future__ import annotations

import pytest
from valuescope.taxonomy.embeddings import make_embedder


@pytest.fixture(scope="session")
def embedder(tmp_path_factory):
    """The offline MiniLM, with an embeddings cache of this session's own."""
    return make_embedder("minilm", cache_dir=tmp_path_factory.mktemp("embcache"))


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Embedders the tests do not pass explicitly (the task texts' static embedder) cache in a
    folder of this session's own, not in the user's."""
    import os

    old = os.environ.get("VALUESCOPE_CACHE_DIR")
    os.environ["VALUESCOPE_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("VALUESCOPE_CACHE_DIR", None)
    else:
        os.environ["VALUESCOPE_CACHE_DIR"] = old
