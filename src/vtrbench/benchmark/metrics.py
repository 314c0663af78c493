"""Retrieval metrics exactly as docs/protocol.md defines them; with vtrbench/ranking.py (ranks to metrics, the
tie and chance rules), the only metric code in the package.

rank = 1 + #{items scored strictly higher than the ground truth} (ties count in the query's favour).
Several captions per video: every caption is a text->video query; for video->text, a video query v scores
the captions of video u by the best of them, max over u's captions of s(caption, v), and ranks the videos'
caption groups (CLIP4Clip/DGL convention).
"""

from __future__ import annotations

import numpy as np

from vtrbench.ranking import (  # noqa: F401  (re-exported: the harness's one metrics module)
    CHANCE_Z,
    COLLAPSED_TIE_SHARE,
    DEGENERATE_QUERY_SHARE,
    RECALL_KS,
    at_chance,
    chance_z,
    chance_zs,
    degenerate_reason,
    is_degenerate,
    metrics_from_ranks,
    summarize_ranks,
    tie_summary,
    unusable_reason,
)


class DivergedError(RuntimeError):
    """A non-finite loss or score: the run ends with status `diverged`, is never ranked nor chosen by a search."""


class NonFiniteScoresError(ValueError):
    """A similarity matrix with NaN or inf: NaN compares false, so every rank would be 1."""


def check_finite(similarity: np.ndarray, what: str = "the similarity matrix") -> None:
    bad = ~np.isfinite(similarity)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise NonFiniteScoresError(f"{what} holds {int(bad.sum()):,} non-finite score(s) of {bad.size:,} (NaN or "
                                   f"inf; first at caption {row}, video {column}): no rank can be read from it")


def ranks_of_ground_truth(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """[Q, N] scores and the ground-truth column of each row -> the rank of the truth in each row."""
    truth_scores = scores[np.arange(scores.shape[0]), truth]
    return 1 + (scores > truth_scores[:, None]).sum(axis=1)


def ties_of_ground_truth(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """[Q, N] scores -> how many other candidates score exactly what the truth scores, in each row."""
    truth_scores = scores[np.arange(scores.shape[0]), truth]
    return (scores == truth_scores[:, None]).sum(axis=1) - 1


def retrieval_ranks(similarity: np.ndarray, caption_video: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-query ranks of both directions.

    similarity: [captions, videos]. caption_video: the video column of each caption; None means the square
    case (caption i belongs to video i).
    """
    return retrieval_ranks_and_ties(similarity, caption_video)[0]


def retrieval_ranks_and_ties(similarity: np.ndarray, caption_video: np.ndarray | None = None
                             ) -> tuple[dict[str, np.ndarray], dict]:
    """Per-query ranks of both directions and their `tie_summary`; non-finite scores are refused."""
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.ndim != 2:
        raise ValueError(f"similarity must be a 2-D [captions, videos] matrix, got shape {sim.shape}")
    if sim.size == 0:
        raise ValueError(f"similarity is {sim.shape[0]}x{sim.shape[1]}: need at least one caption and one video")
    check_finite(sim)
    num_captions, num_videos = sim.shape
    if caption_video is None:
        if num_captions != num_videos:
            raise ValueError(
                f"similarity is {num_captions}x{num_videos}: a non-square matrix needs the video index of "
                f"each caption"
            )
        caption_video = np.arange(num_captions)
    caption_video = np.asarray(caption_video)
    if caption_video.dtype.kind not in "iu":
        raise ValueError(f"video indices must be integers, got {caption_video.dtype}")
    caption_video = caption_video.astype(np.int64, copy=False)
    if caption_video.shape != (num_captions,):
        raise ValueError(f"need one video index per caption: shape ({num_captions},), got {caption_video.shape}")
    if caption_video.min() < 0 or caption_video.max() >= num_videos:
        raise ValueError(f"video indices must lie in [0, {num_videos})")
    if np.unique(caption_video).size != num_videos:
        raise ValueError("every video needs at least one caption")
    t2v = ranks_of_ground_truth(sim, caption_video)
    # group_scores[u, v]: the best of video u's captions against video v. A video query v ranks the caption
    # groups u by that score (CLIP4Clip's tensor_video_to_text_sim), hence the transpose.
    group_scores = np.full((num_videos, num_videos), -np.inf)
    np.maximum.at(group_scores, caption_video, sim)
    v2t = ranks_of_ground_truth(group_scores.T, np.arange(num_videos))
    ties = {"t2v": ties_of_ground_truth(sim, caption_video), "v2t": ties_of_ground_truth(group_scores.T,
                                                                                          np.arange(num_videos))}
    summary = tie_summary(ties, num_videos)
    summary["chance_z"] = chance_zs({"t2v": t2v, "v2t": v2t}, num_videos)
    return {"t2v": t2v, "v2t": v2t}, summary


def retrieval_metrics(similarity: np.ndarray, caption_video: np.ndarray | None = None) -> dict:
    """`{"t2v": {R1, R5, R10, MdR, MnR}, "v2t": {...}, "rsum"}` for a [captions, videos] matrix."""
    return metrics_from_ranks(retrieval_ranks(similarity, caption_video))


def metrics_and_ties(similarity: np.ndarray, caption_video: np.ndarray | None = None) -> tuple[dict, dict, dict]:
    """(metrics, per-query ranks, tie summary) of a [captions, videos] matrix: what a run and
    `vtrbench metrics` report."""
    ranks, ties = retrieval_ranks_and_ties(similarity, caption_video)
    return metrics_from_ranks(ranks), ranks, ties
