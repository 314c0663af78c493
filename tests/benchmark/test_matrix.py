"""The one matrix expansion behind `vtrbench leaderboard` and `vtrbench tune`: same lists, same checks."""

import pytest

from vtrbench.benchmark.config import ConfigError
from vtrbench.benchmark.matrix import DEFAULT_DATASETS, expand
from vtrbench.benchmark.tuning import plan_searches
from vtrbench.registry import METHODS


def test_lists_single_keys_and_defaults():
    matrix = expand(["methods=[dgl,lora]", "seeds=[0,2]", "train.epochs=1"])
    assert (matrix.methods, matrix.datasets, matrix.seeds) == (["dgl", "lora"], DEFAULT_DATASETS, [0, 2])
    assert matrix.passthrough == ["train.epochs=1"]
    matrix = expand(["method=dgl", "dataset=vatex", "seed=3"])
    assert (matrix.methods, matrix.datasets, matrix.seeds, matrix.passthrough) == (["dgl"], ["vatex"], [3], [])
    assert expand([]).methods == METHODS.names()
    assert expand(["seed=3", "train.lr=0.1"], keep=("seed",)).passthrough == ["seed=3", "train.lr=0.1"]


@pytest.mark.parametrize("matrix, message", [
    ("methods=[]", "methods=[]: expected a non-empty list"),
    ("datasets=[]", "datasets=[]: expected a non-empty list"),
    ("methods=[dgl,dgl]", "methods: dgl repeated"),
    ("seeds=[0,1]", "seeds=[..]: a search runs with one seed"),
])
def test_a_search_checks_its_matrix_as_the_leaderboard_does(matrix, message):
    with pytest.raises(ConfigError) as raised:
        plan_searches([matrix])
    assert str(raised.value).startswith(message)
