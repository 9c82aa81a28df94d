"""metamon_sp/battle_gc.py: the young generation's pace while battles play, and Python's after."""

from __future__ import annotations

import gc

import pytest

from metamon_sp.battle_gc import YOUNG_THRESHOLD, battle_gc


def test_the_young_are_collected_less_often_in_the_block_and_as_before_after_it():
    before = gc.get_threshold()
    with battle_gc():
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:])
        with battle_gc(50):  # nested: the inner pace, then the outer one again
            assert gc.get_threshold()[0] == 50
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), battle_gc():
        raise RuntimeError("a battle failed")
    assert gc.get_threshold() == before
