"""How per-query ranks become metrics, and when a result may be ranked at all: the rules shared by the harness,
which writes a result (`benchmark/metrics.py` computes the ranks from a similarity matrix), and the report,
which judges every result it reads again by these rules, from the ranks the file stores (no torch here).

rank = 1 + #{candidates scored strictly higher than the target}: ties count in the query's favour (CLIP4Clip's
convention; docs/protocol.md, "Metrics").
"""

from __future__ import annotations

import numpy as np

RECALL_KS = (1, 5, 10)
DIRECTIONS = ("t2v", "v2t")
# Ties go to the query, so a model whose scores collapsed would score well: all equal reads R@1 100, and
# vectors snapped to a few dozen directions read a high R@1 whenever a target shares its query's direction. A
# query is *tied* when at least one other candidate scores exactly what its target scores, and *collapsed* when
# at least COLLAPSED_TIE_SHARE of the other candidates do. A result is *degenerate* when more than
# DEGENERATE_QUERY_SHARE of the queries of either direction are tied: more than half of its ranks would then be
# decided by the tie convention rather than by the scores. A working model's scores are distinct floats; it
# ties only where two candidates are the same input (a caption written twice), a few queries in a hundred. A
# degenerate result is never ranked; every result records its tied and collapsed queries per direction.
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
RANDOM_PRETRAINED = "random"  # `backbone.pretrained=random`: no pretrained weights


def tie_summary(ties: dict[str, np.ndarray], candidates: int) -> dict:
    """`{t2v: {tied_queries, collapsed_queries, queries}, v2t: {...}, degenerate}` by the rule above, from
    each query's count of other candidates tied with its target."""
    out: dict = {}
    for direction, counts in ties.items():
        collapsed = counts >= max(1.0, COLLAPSED_TIE_SHARE * (candidates - 1))
        out[direction] = {"tied_queries": int((counts > 0).sum()), "collapsed_queries": int(collapsed.sum()),
                          "queries": int(counts.size)}
    out["degenerate"] = is_degenerate(out)
    return out


def is_degenerate(summary: dict) -> bool:
    """The rule above, on a tie summary's counts."""
    return any(summary[d]["tied_queries"] > DEGENERATE_QUERY_SHARE * summary[d]["queries"]
               for d in DIRECTIONS if d in summary)


def degenerate_reason(ties: dict) -> str:
    """Why a tie summary is degenerate, in words."""
    return "; ".join(
        f"{direction}: {ties[direction]['tied_queries']:,} of {ties[direction]['queries']:,} queries have their "
        f"target tied with another candidate ({ties[direction]['collapsed_queries']:,} with at least "
        f"{COLLAPSED_TIE_SHARE:.0%} of them)"
        for direction in DIRECTIONS if direction in ties
    ) + (f" (degenerate above {DEGENERATE_QUERY_SHARE:.0%}: the tie convention, not the scores, would decide "
         f"the ranks; collapsed scores, not ranked)")


def chance_z(ranks: np.ndarray, candidates: int) -> float:
    """How many standard errors the mean rank lies below a random ordering's (N + 1) / 2 (see CHANCE_Z)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if candidates < 2 or ranks.size == 0:
        return 0.0
    standard_error = np.sqrt((candidates ** 2 - 1) / 12.0 / ranks.size)
    return float(((candidates + 1) / 2.0 - ranks.mean()) / standard_error)


def chance_zs(ranks: dict[str, np.ndarray], candidates: int) -> dict[str, float]:
    """`chance_z` of each direction, as a result records it."""
    return {direction: round(chance_z(ranks[direction], candidates), 2) for direction in DIRECTIONS}


def at_chance(summary: dict) -> bool:
    """Whether neither direction ranks better than a random ordering (a summary without `chance_z` cannot say;
    the report computes it from the stored ranks)."""
    z = summary.get("chance_z")
    return bool(z) and all(value < CHANCE_Z for value in z.values())


def unusable_reason(summary: dict, backbone_pretrained: bool) -> str | None:
    """Why a finished result must not be ranked, or None: collapsed scores (ties), or, on a pretrained
    backbone, a ranking at chance. A run with a reason ends `degenerate`."""
    if is_degenerate(summary):
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


def metrics_from_ranks(ranks: dict[str, np.ndarray]) -> dict:
    out: dict = {direction: summarize_ranks(np.asarray(r)) for direction, r in ranks.items()}
    out["rsum"] = float(sum(out[d][f"R{k}"] for d in DIRECTIONS for k in RECALL_KS))
    return out
