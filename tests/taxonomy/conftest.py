"""The taxonomy stage: embeddings, the value tree, task clusters, the namer, the comparison with the
published taxonomy, and killed runs."""

from __future__ import annotations

import pytest
from valuescope.taxonomy.embeddings import make_embedder


@pytest.fixture(scope="session")
def embedder(tmp_path_factory):
    """The offline MiniLM, with an embeddings cache of this session's own."""
    return make_embedder("minilm", cache_dir=tmp_path_factory.mktemp("embcache"))
