"""Mergeable state: any sharding, merged in any order, equals one pass; bytes and pickle
round-trip; damaged bytes are refused with ValueError."""

from __future__ import annotations

import pickle

import pytest
from helpers.features import assert_same_result, make_rows, merged_shards, to_table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from valuescope import Engine

# min_users 3: a merge can then saturate a set midway through the other side's ids
ENGINE_KW = {"min_conversations": 3, "min_users": 3}
ROWS = make_rows(1200, seed=11, bad_rate=0.02)
TABLE = to_table(ROWS)
ONE_PASS = Engine(**ENGINE_KW)
ONE_PASS.update(TABLE)
ONE_PASS_RESULT = ONE_PASS.result()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cuts=st.lists(st.integers(0, len(ROWS)), max_size=6),
    order=st.randoms(use_true_random=False),
    via_bytes=st.booleans(),
)
def test_any_sharding_merged_in_any_order_equals_one_pass(cuts, order, via_bytes):
    # merged as a random binary tree, not just left to right
    got = merged_shards(ENGINE_KW, TABLE, cuts, order, via_bytes)
    assert_same_result(got.result(), ONE_PASS_RESULT)


@settings(max_examples=15, deadline=None)
@given(batch=st.integers(1, 700))
def test_batch_size_does_not_matter(batch):
    e = Engine(**ENGINE_KW)
    for b in TABLE.to_batches(max_chunksize=batch):
        e.update(b)
    assert_same_result(e.result(), ONE_PASS_RESULT)


def test_bytes_round_trip():
    again = Engine.from_bytes(ONE_PASS.to_bytes())
    assert_same_result(again.result(), ONE_PASS_RESULT)
    assert again.min_conversations == 3 and again.min_users == 3
    # canonical form: re-encoding a decoded state is stable in size
    assert len(again.to_bytes()) == len(ONE_PASS.to_bytes())


def test_pickle_round_trip():
    again = pickle.loads(pickle.dumps(ONE_PASS))
    assert_same_result(again.result(), ONE_PASS_RESULT)


def test_merge_with_itself_doubles_counts():
    e = Engine(**ENGINE_KW)
    e.update(TABLE)
    e.merge(e)
    assert e.result()["summary"]["n_rows"] == 2 * len(ROWS)


def test_merge_refuses_other_settings():
    with pytest.raises(ValueError, match="min_users"):
        Engine(min_users=3).merge(Engine(min_users=4))


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200))
def test_garbage_bytes_raise_value_error(data):
    with pytest.raises(ValueError):
        Engine.from_bytes(data)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_truncated_or_flipped_bytes_raise_value_error(data):
    good = ONE_PASS.to_bytes()
    cut = data.draw(st.integers(0, len(good) - 1))
    with pytest.raises(ValueError):
        Engine.from_bytes(good[:cut])
    pos = data.draw(st.integers(0, len(good) - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = bytearray(good)
    flipped[pos] ^= 1 << bit
    with pytest.raises(ValueError):
        Engine.from_bytes(bytes(flipped))
