"""T2V R@1 against tuned parameters, one figure per dataset, with the Pareto front and published points.

matplotlib runs on the Agg backend (files only, no display), selected on the figure object itself so that
importing this module does not change the caller's global backend. Names from result files are drawn as
literal text (no mathtext): a `$` in a variant is a dollar sign, never a formula to parse.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter


def zero_params_floor(tuned_counts: pd.Series) -> float:
    """Where 0 tuned parameters is drawn on a log axis: one decade below the smallest positive count."""
    positive = tuned_counts[tuned_counts > 0]
    smallest = float(positive.min()) if not positive.empty else 1e4
    return 10 ** (math.floor(math.log10(smallest)) - 1)


def pareto_front(tuned: np.ndarray, r1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The best R@1 reachable with at most x tuned parameters, at the points where it improves."""
    order = np.lexsort((-r1, tuned))
    front_x, front_y = [], []
    for x, y in zip(tuned[order], r1[order], strict=True):
        if not front_y or y > front_y[-1]:
            front_x.append(x)
            front_y.append(y)
    return np.asarray(front_x), np.asarray(front_y)


def plot_r1_against_params(
    table: str, measured: pd.DataFrame, published: pd.DataFrame, png_path: Path, svg_path: Path
) -> str:
    """Draw one dataset's figure to ``png_path`` and ``svg_path``; return its caption."""
    all_tuned = pd.concat([measured["tuned"], published["tuned"]]).dropna()
    floor = zero_params_floor(all_tuned)
    figure = Figure(figsize=(8.0, 4.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colors = {m: f"C{i % 10}" for i, m in enumerate(dict.fromkeys(measured["method"]))}

    for backbone, rows in measured.groupby("backbone", sort=False):
        x = np.maximum(rows["tuned"].to_numpy(float), floor)
        y = rows["t2v_R1"].to_numpy(float)
        front_x, front_y = pareto_front(x, y)
        axes.step(
            front_x,
            front_y,
            where="post",
            color="0.4",
            linestyle="--",
            linewidth=1,
            label=f"Pareto front ({backbone})",
        )
        for (_, row), px, py in zip(rows.iterrows(), x, y, strict=True):
            low, high = row["t2v_R1_ci_low"], row["t2v_R1_ci_high"]
            error = None if pd.isna(low) else [[py - low], [high - py]]
            label = f"{row['method']}.{row['variant']}" if row["variant"] else row["method"]
            axes.errorbar(
                px,
                py,
                yerr=error,
                fmt="o",
                color=colors[row["method"]],
                capsize=3,
                label=f"{label} ({backbone})",
            )
            axes.annotate(label, (px, py), textcoords="offset points", xytext=(5, 4), fontsize=7, parse_math=False)

    placed = published.dropna(subset=["tuned", "t2v_R1"])
    if not placed.empty:
        x = np.maximum(placed["tuned"].to_numpy(float), floor)
        axes.scatter(
            x,
            placed["t2v_R1"],
            facecolors="none",
            edgecolors="black",
            marker="s",
            s=40,
            label="published (papers' own backbone)",
        )
        for (_, row), px in zip(placed.iterrows(), x, strict=True):
            name = f"{row['method']}.{row['variant']}" if row["variant"] else row["method"]
            axes.annotate(
                f"{name} (published)",
                (px, row["t2v_R1"]),
                textcoords="offset points",
                xytext=(5, -9),
                fontsize=6,
                color="0.35",
                parse_math=False,
            )

    axes.set_xscale("log")
    x_max = max(float(all_tuned.max()) if not all_tuned.empty else floor, floor) * 8
    decades = [10.0**e for e in range(round(math.log10(floor)) + 1, math.ceil(math.log10(x_max)))]
    axes.xaxis.set_minor_locator(LogLocator(subs="auto"))
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xticks([floor, *decades], ["0", *(_count_label(d) for d in decades)])
    axes.set_xlim(floor / 2, x_max)
    axes.set_xlabel(f"tuned parameters (log scale; 0 drawn at {_count_label(floor)})")
    axes.set_ylabel("Text→Video R@1 (%)")
    axes.set_title(table, parse_math=False)
    axes.grid(True, which="major", alpha=0.3)
    legend = axes.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    for text in legend.get_texts():
        text.set_parse_math(False)
    figure.savefig(png_path, dpi=150)
    figure.savefig(svg_path)

    unplaced = len(published) - len(placed)
    caption = (
        f"{table}: Text→Video R@1 against tuned parameters (log x). Zero tuned parameters (zero_shot) is "
        f"drawn at {_count_label(floor)}, labelled 0. Error bars: 95% bootstrap CI over queries. Dashed: "
        "Pareto front (best R@1 with at most that many tuned parameters). Hollow squares: published numbers "
        "(their own backbone and training), not part of the front."
    )
    if unplaced:
        caption += f" {unplaced} published row(s) without a parameter count are not drawn."
    return caption


def _count_label(count: float) -> str:
    for threshold, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if count >= threshold:
            return f"{count / threshold:g}{suffix}"
    return f"{count:g}"
