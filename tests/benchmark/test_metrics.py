import numpy as np
import pytest

from vtrbench.benchmark.metrics import (
    CHANCE_Z,
    at_chance,
    chance_z,
    metrics_and_ties,
    retrieval_metrics,
    retrieval_ranks,
    unusable_reason,
)


def test_square_case_by_hand():
    # caption i belongs to video i
    sim = np.array([
        [0.9, 0.1, 0.0],   # truth first: rank 1
        [0.8, 0.5, 0.7],   # truth 0.5, two above: rank 3
        [0.1, 0.9, 0.3],   # truth 0.3, one above: rank 2
    ])
    ranks = retrieval_ranks(sim)
    assert ranks["t2v"].tolist() == [1, 3, 2]
    # video->text: column j, caption scores; video 0: [0.9, 0.8, 0.1] truth 0.9 -> 1
    # video 1: [0.1, 0.5, 0.9] truth 0.5 -> 2; video 2: [0.0, 0.7, 0.3] truth 0.3 -> 2
    assert ranks["v2t"].tolist() == [1, 2, 2]
    m = retrieval_metrics(sim)
    assert m["t2v"]["R1"] == pytest.approx(100 / 3)
    assert m["t2v"]["R5"] == 100.0
    assert m["t2v"]["MdR"] == 2.0
    assert m["t2v"]["MnR"] == pytest.approx(2.0)
    assert m["v2t"]["MnR"] == pytest.approx(5 / 3)
    assert m["rsum"] == pytest.approx(m["t2v"]["R1"] + m["v2t"]["R1"] + 4 * 100.0)


def test_ties_count_in_the_querys_favour():
    sim = np.array([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [0.2, 0.2, 0.2]])
    ranks = retrieval_ranks(sim)
    assert ranks["t2v"].tolist() == [1, 1, 1]


def test_multi_caption_video_to_text_takes_best_caption():
    # 4 captions, 2 videos; captions 0,1 -> video 0; 2,3 -> video 1
    sim = np.array([
        [0.2, 0.9],  # bad caption of video 0 (rank 2)
        [0.8, 0.1],  # good caption of video 0 (rank 1)
        [0.3, 0.4],  # caption of video 1 (rank 1)
        [0.7, 0.6],  # caption of video 1 (rank 2)
    ])
    caption_video = np.array([0, 0, 1, 1])
    ranks = retrieval_ranks(sim, caption_video)
    assert ranks["t2v"].tolist() == [2, 1, 1, 2]
    # query video 0 scores group u by max over u's captions of s(c, 0): group 0 -> 0.8, group 1 -> 0.7: rank 1
    # query video 1: group 0 -> max(0.9, 0.1) = 0.9, group 1 -> max(0.4, 0.6) = 0.6: rank 2
    assert ranks["v2t"].tolist() == [1, 2]


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="non-square"):
        retrieval_ranks(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="one video index per caption"):
        retrieval_ranks(np.zeros((3, 2)), np.array([0, 1]))
    with pytest.raises(ValueError, match="at least one caption"):
        retrieval_ranks(np.zeros((2, 3)), np.array([0, 1]))


def test_cli_metrics_prints_the_documented_json(tmp_path, capsys):
    import json

    from vtrbench.benchmark.cli import main

    sim = np.eye(4) + 0.01
    np.save(tmp_path / "sim.npy", sim)
    assert main(["metrics", str(tmp_path / "sim.npy")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"t2v", "v2t", "rsum", "ties"}
    assert out["ties"] == {"t2v": {"tied_queries": 0, "collapsed_queries": 0, "queries": 4},
                           "v2t": {"tied_queries": 0, "collapsed_queries": 0, "queries": 4}, "degenerate": False,
                           "chance_z": {"t2v": 2.68, "v2t": 2.68}}  # (2.5 - 1) / sqrt(15 / 12 / 4)
    assert set(out["t2v"]) == {"R1", "R5", "R10", "MdR", "MnR"}
    assert out["t2v"]["R1"] == 100.0
    np.save(tmp_path / "cv.npy", np.array([0, 0, 1, 1]))
    np.save(tmp_path / "sim2.npy", np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.1]]))
    assert main(["metrics", str(tmp_path / "sim2.npy"), "--caption-video", str(tmp_path / "cv.npy")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["t2v"]["R1"] == 75.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_are_refused(bad):
    sim = np.eye(3)
    sim[1, 2] = bad
    with pytest.raises(ValueError, match="1 non-finite score.*first at caption 1, video 2"):
        retrieval_ranks(sim)
    with pytest.raises(ValueError, match="non-finite"):
        retrieval_ranks(np.full((3, 3), np.nan))


def test_collapsed_scores_are_degenerate_and_ties_are_counted():
    # all equal: every target tied with every candidate; R@1 would read 100 under the query-favourable rule
    metrics, _, ties = metrics_and_ties(np.zeros((20, 20)))
    assert metrics["t2v"]["R1"] == 100.0 and ties["degenerate"]
    assert ties["t2v"] == {"tied_queries": 20, "collapsed_queries": 20, "queries": 20}
    # half of the queries tied with one other candidate (below the 10% share): not more than half, not degenerate
    sim = np.eye(20)
    sim[np.arange(10), np.arange(10) + 10] = 1.0
    _, _, ties = metrics_and_ties(sim)
    assert ties["t2v"]["tied_queries"] == 10 and ties["t2v"]["collapsed_queries"] == 0 and not ties["degenerate"]
    # one query more: the tie convention would decide more than half of the ranks
    sim[10, 0] = 1.0
    _, _, ties = metrics_and_ties(sim)
    assert ties["t2v"]["tied_queries"] == 11 and ties["t2v"]["collapsed_queries"] == 0 and ties["degenerate"]


def test_vectors_snapped_to_a_few_directions_are_degenerate():
    # 24 directions for 1,000 clips: each target ties with about 40 others (4%, under the 10% collapsed share),
    # and the query-favourable ranks read an R@1 far above a working model's; the tie rule catches it
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(24, 8))
    caption_mode = rng.integers(0, 24, 1000)
    clip_mode = np.where(rng.random(1000) < 0.6, caption_mode, rng.integers(0, 24, 1000))
    text, video = directions[caption_mode], directions[clip_mode]
    metrics, _, ties = metrics_and_ties(text @ video.T)
    assert metrics["t2v"]["R1"] > 50 and ties["t2v"]["collapsed_queries"] == 0
    assert ties["t2v"]["tied_queries"] > 500 and ties["degenerate"]
    assert unusable_reason(ties, backbone_pretrained=True).startswith("t2v: ")


def test_cli_metrics_refuses_non_finite_input_and_flags_a_degenerate_matrix(tmp_path, capsys):
    from vtrbench.benchmark.cli import main

    np.save(tmp_path / "nan.npy", np.full((4, 4), np.nan))
    assert main(["metrics", str(tmp_path / "nan.npy")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'nan.npy'}: the similarity matrix holds 16 non-finite" in err
    inf_column = np.eye(4)
    inf_column[:, 2] = np.inf
    np.save(tmp_path / "inf.npy", inf_column)
    assert main(["metrics", str(tmp_path / "inf.npy")]) == 2
    np.save(tmp_path / "zero.npy", np.zeros((4, 4)))
    assert main(["metrics", str(tmp_path / "zero.npy")]) == 1
    assert "degenerate: t2v: 4 of 4 queries" in capsys.readouterr().err


def test_cli_metrics_names_the_file_of_unreadable_or_unusable_input(tmp_path, capsys):
    from vtrbench.benchmark.cli import main

    def message(name: str, *extra: str) -> str:
        assert main(["metrics", str(tmp_path / name), *extra]) == 2
        return capsys.readouterr().err

    (tmp_path / "text.npy").write_text("0.1 0.2\n0.3 0.4\n")
    assert f"{tmp_path / 'text.npy'}: not a .npy array of numbers" in message("text.npy")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    assert f"{tmp_path / 'objects.npy'}: not a .npy array of numbers" in message("objects.npy")
    np.save(tmp_path / "whole.npy", np.eye(3))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "whole.npy").read_bytes()[:10])
    assert f"{tmp_path / 'cut.npy'}: truncated or corrupt .npy file" in message("cut.npy")
    np.save(tmp_path / "empty.npy", np.zeros((0, 0)))
    assert "similarity is 0x0: need at least one caption and one video" in message("empty.npy")
    np.save(tmp_path / "rect.npy", np.eye(2, 3)[[0, 1, 0, 1, 0, 1]][:, :3])
    np.save(tmp_path / "halves.npy", np.array([0.5, 1, 2, 0, 1, 2]))
    err = message("rect.npy", "--caption-video", str(tmp_path / "halves.npy"))
    assert f"with {tmp_path / 'halves.npy'}: video indices must be integers, got float64" in err
    np.save(tmp_path / "complex.npy", np.eye(3) * (1 + 2j))  # found in review: the imaginary part was dropped
    assert f"{tmp_path / 'complex.npy'}: holds complex128 values; expected real numbers" in message("complex.npy")
    # found in review: these two ended in a traceback and exit 1, the code of a degenerate matrix
    np.savez(tmp_path / "pair.npz", sim=np.eye(3))
    assert f"{tmp_path / 'pair.npz'}: an .npz archive (sim); expected one .npy array" in message("pair.npz")
    np.save(tmp_path / "scalar.npy", np.array(0))
    err = message("whole.npy", "--caption-video", str(tmp_path / "scalar.npy"))
    assert "need one video index per caption: shape (3,), got ()" in err


def test_chance_z_is_the_mean_rank_below_a_random_orderings_in_standard_errors():
    assert chance_z(np.array([1, 1, 1, 1]), 4) == pytest.approx(1.5 / np.sqrt(15 / 12 / 4))
    assert chance_z(np.array([4, 4, 4, 4]), 4) == pytest.approx(-1.5 / np.sqrt(15 / 12 / 4))
    # a random ordering of 1,000 candidates for 1,000 queries sits within a few standard errors of zero
    ranks = np.random.default_rng(0).integers(1, 1001, size=1000)
    assert abs(chance_z(ranks, 1000)) < 3


def test_a_ranking_at_chance_is_unusable_on_a_pretrained_backbone_only():
    rng = np.random.default_rng(0)
    _, _, random_ties = metrics_and_ties(rng.normal(size=(1000, 1000)))
    assert not random_ties["degenerate"]  # distinct scores: the tie rule does not see it
    assert at_chance(random_ties)
    reason = unusable_reason(random_ties, backbone_pretrained=True)
    assert reason.startswith("ranks at chance") and f"{CHANCE_Z}" in reason
    assert unusable_reason(random_ties, backbone_pretrained=False) is None  # a random backbone's true result
    # a weak but real model: the truth a little above the noise
    _, _, weak_ties = metrics_and_ties(rng.normal(size=(1000, 1000)) + 0.3 * np.eye(1000))
    assert not at_chance(weak_ties) and unusable_reason(weak_ties, backbone_pretrained=True) is None
    # one direction above chance is enough to be a model
    assert not at_chance({"degenerate": False, "chance_z": {"t2v": 0.1, "v2t": CHANCE_Z + 0.1}})
    assert not at_chance({"degenerate": False})  # files written before the rule
