"""The seeded hold-out every format falls back to when it has no val file."""

from __future__ import annotations

import pytest

from vtrbench.datasets.base import holdout_ids

IDS = [f"clip{i}" for i in range(200)]


def test_the_hold_out_is_seeded_sized_and_independent_of_file_order() -> None:
    held = holdout_ids(IDS, 0.1, seed=0)
    assert len(held) == 20 and held <= set(IDS)
    assert holdout_ids(list(reversed(IDS)), 0.1, seed=0) == held  # the same ids whatever the file order
    assert holdout_ids(IDS, 0.1, seed=1) != held
    assert len(holdout_ids(IDS, 0.25, seed=0)) == 50


def test_the_hold_out_leaves_something_to_train_on_and_takes_at_least_one() -> None:
    assert len(holdout_ids(["a", "b"], 0.9, seed=0)) == 1
    assert len(holdout_ids(["a", "b", "c"], 0.01, seed=0)) == 1


@pytest.mark.parametrize(("ids", "fraction", "expected"), [
    (IDS, 0.0, "val_fraction=0.0"), (IDS, 1.0, "val_fraction=1.0"), (["a"], 0.5, "at least 2 training clips"),
])
def test_impossible_hold_outs_are_clear_errors(ids: list[str], fraction: float, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        holdout_ids(ids, fraction, seed=0)
