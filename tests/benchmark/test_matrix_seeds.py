"""The offline preset runs three seeds by default; the command line's `seeds=` or `seed=` overrides it, and a
search keeps one seed."""

from vtrbench.benchmark.matrix import expand


def test_the_default_matrix_has_the_presets_three_seeds():
    assert expand([]).seeds == [0, 1, 2]
    assert expand(["seeds=[4]"]).seeds == [4] and expand(["seed=5"]).seeds == [5]
    assert expand([], keep=("seed",)).seeds == [0]
    assert expand(["preset=paper"]).seeds == [0]
