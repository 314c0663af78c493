"""Retrieval metrics exactly as docs/protocol.md defines them; the only metric code in the package.

rank = 1 + #{items scored strictly higher than the ground truth} (ties count in the query's favour).
Several captions per video: every caption is a text->video query; for video->text, a video query v scores
the captions of video u by the best of them, max over u's captions of s(caption, v), and ranks the videos'
caption groups (CLIP4Clip/DGL convention).
"""

from __future__ import annotations

import numpy as np

RECALL_KS = (1, 5, 10)
# Ties go to the query (CLIP4Clip's convention), so a model whose scores collapsed (all equal) would score
# R@1 100. The rule that flags such a result: a query is *collapsed* when its target's score is tied with at
# least COLLAPSED_TIE_SHARE of the other candidates (and with one at least); a result is *degenerate* when more
# than DEGENERATE_QUERY_SHARE of the queries of either direction are collapsed. A degenerate result is never
# ranked; every result records its tied and collapsed queries per direction.
COLLAPSED_TIE_SHARE = 0.1
DEGENERATE_QUERY_SHARE = 0.5
# A ranking no better than a random ordering is the other way a result can be no result: a model whose training
# collapsed (or never left an initialisation that ranks at random) still gives distinct scores. Under a random
# ordering of N candidates a query's rank is uniform on 1..N, so the mean rank of Q queries is (N + 1) / 2 with
# standard error sqrt((N^2 - 1) / (12 Q)). `chance_z` is how many standard errors a direction's mean rank lies
# below that; a result is *at chance* when neither direction reaches CHANCE_Z (one-sided p = 0.0005). Only a
# model built on a backbone that knows something is judged by it (`unusable_reason`): a randomly initialised
# backbone ranks at chance by construction, and that is its true result.
CHANCE_Z = 3.29


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


def tie_summary(ties: dict[str, np.ndarray], candidates: int) -> dict:
    """`{t2v: {tied_queries, collapsed_queries, queries}, v2t: {...}, degenerate}` by the rule above."""
    out: dict = {}
    for direction, counts in ties.items():
        collapsed = counts >= max(1.0, COLLAPSED_TIE_SHARE * (candidates - 1))
        out[direction] = {"tied_queries": int((counts > 0).sum()), "collapsed_queries": int(collapsed.sum()),
                          "queries": int(counts.size)}
    out["degenerate"] = any(d["collapsed_queries"] > DEGENERATE_QUERY_SHARE * d["queries"] for d in out.values())
    return out


def degenerate_reason(ties: dict) -> str:
    """Why a tie summary is degenerate, in words."""
    return "; ".join(
        f"{direction}: {ties[direction]['collapsed_queries']:,} of {ties[direction]['queries']:,} queries have their "
        f"target tied with at least {COLLAPSED_TIE_SHARE:.0%} of the candidates"
        for direction in ("t2v", "v2t") if direction in ties
    ) + f" (degenerate above {DEGENERATE_QUERY_SHARE:.0%}: collapsed scores, not ranked)"


def chance_z(ranks: np.ndarray, candidates: int) -> float:
    """How many standard errors the mean rank lies below a random ordering's (N + 1) / 2 (see CHANCE_Z)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if candidates < 2 or ranks.size == 0:
        return 0.0
    standard_error = np.sqrt((candidates ** 2 - 1) / 12.0 / ranks.size)
    return float(((candidates + 1) / 2.0 - ranks.mean()) / standard_error)


def at_chance(summary: dict) -> bool:
    """Whether neither direction ranks better than a random ordering (a summary without `chance_z`, from a file
    written before the rule, is not)."""
    z = summary.get("chance_z")
    return bool(z) and all(value < CHANCE_Z for value in z.values())


def unusable_reason(summary: dict, backbone_pretrained: bool) -> str | None:
    """Why a finished result must not be ranked, or None: collapsed scores (ties), or, on a pretrained
    backbone, a ranking at chance. A run with a reason ends `degenerate`."""
    if summary["degenerate"]:
        return degenerate_reason(summary)
    if backbone_pretrained and at_chance(summary):
        z = ", ".join(f"{d} {v:+.1f}" for d, v in summary["chance_z"].items())
        return (f"ranks at chance: the mean rank of neither direction lies {CHANCE_Z} standard errors below a "
                f"random ordering's (z: {z}), so the model lost what its pretrained backbone knew (collapsed "
                f"training, or an initialisation that never left random ranking); not ranked")
    return None


def summarize_ranks(ranks: np.ndarray) -> dict[str, float]:
    out = {f"R{k}": float(100.0 * np.mean(ranks <= k)) for k in RECALL_KS}
    out["MdR"] = float(np.median(ranks))
    out["MnR"] = float(np.mean(ranks))
    return out


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
        raise ValueError(f"need one video index per caption ({num_captions}), got {caption_video.shape[0]}")
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
    summary["chance_z"] = {"t2v": round(chance_z(t2v, num_videos), 2), "v2t": round(chance_z(v2t, num_videos), 2)}
    return {"t2v": t2v, "v2t": v2t}, summary


def retrieval_metrics(similarity: np.ndarray, caption_video: np.ndarray | None = None) -> dict:
    """`{"t2v": {R1, R5, R10, MdR, MnR}, "v2t": {...}, "rsum"}` for a [captions, videos] matrix."""
    return metrics_from_ranks(retrieval_ranks(similarity, caption_video))


def metrics_and_ties(similarity: np.ndarray, caption_video: np.ndarray | None = None) -> tuple[dict, dict, dict]:
    """(metrics, per-query ranks, tie summary) of a [captions, videos] matrix: what a run and
    `vtrbench metrics` report."""
    ranks, ties = retrieval_ranks_and_ties(similarity, caption_video)
    return metrics_from_ranks(ranks), ranks, ties


def metrics_from_ranks(ranks: dict[str, np.ndarray]) -> dict:
    out: dict = {direction: summarize_ranks(np.asarray(r)) for direction, r in ranks.items()}
    out["rsum"] = float(sum(out[d][f"R{k}"] for d in ("t2v", "v2t") for k in RECALL_KS))
    return out
