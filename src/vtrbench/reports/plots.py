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
from matplotlib.text import Text
from matplotlib.ticker import LogLocator, NullFormatter

from vtrbench.reports.aggregate import FIRST_METHOD
from vtrbench.schema import method_label

# tab10, then navy and Dark2's others: colours that a reader tells apart, so eleven trained methods never share
# one; zero-shot, the reference that trains nothing, is black.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#000080", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#1b9e77")
REFERENCE_COLOR = "#000000"


def method_colors(rows: pd.DataFrame) -> dict[str, str]:
    """One colour per method (and variant) label, the same in both figures of a dataset: zero-shot black, the
    other labels in sorted order take the palette in turn (it repeats only past 18)."""
    labels = sorted({method_label(m, v) for m, v in zip(rows["method"], rows["variant"], strict=True)})
    others = [label for label in labels if label != FIRST_METHOD]
    return {FIRST_METHOD: REFERENCE_COLOR} | {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(others)}


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


def same_backbone(a: str, b: str) -> bool:
    """Papers write `ViT-B/32`, open_clip `ViT-B-32`: the same architecture."""
    return str(a).replace("/", "-").lower() == str(b).replace("/", "-").lower()


def step_segments(x: np.ndarray, y: np.ndarray) -> list[tuple[float, float, float, float]]:
    """The horizontal and vertical pieces (x0, y0, x1, y1) of `axes.step(x, y, where="post")`."""
    pieces = []
    for i in range(len(x) - 1):
        pieces += [(x[i], y[i], x[i + 1], y[i]), (x[i + 1], y[i], x[i + 1], y[i + 1])]
    return pieces


LABEL_CHARACTERS = 40  # a longer name is cut on a figure (its table holds it whole)


def shortened(label: str) -> str:
    return label if len(label) <= LABEL_CHARACTERS else label[: LABEL_CHARACTERS - 1] + "…"


def place_labels(
    axes, points: list[tuple[float, float, str]], bars: list[tuple[float, float, float]] = (), fontsize: float = 7,
    segments: list[tuple[float, float, float, float]] = (),
) -> None:
    """Annotate each (x, y, text) beside its point where it overlaps no label placed before it, no point, no
    error bar (`bars`: (x, low, high) in data coordinates) and no line piece (`segments`: horizontal or
    vertical (x0, y0, x1, y1), such as the Pareto front's steps), inside the axes.

    Greedy, from the highest point down: candidates right and left of the point, level, then above and below
    it at growing distances (with a leader line when away from the point); the first free one wins, else the
    one that overlaps least.
    """
    figure = axes.figure
    renderer = figure.canvas.get_renderer()
    figure.draw_without_rendering()  # final layout, so that display coordinates hold
    to_display = axes.transData.transform
    frame = axes.get_window_extent(renderer)
    dots = [to_display((x, y)) for x, y, _ in points]
    obstacles = [(px - 4, py - 4, px + 4, py + 4) for px, py in dots]
    for x, low, high in bars:
        (px, y0), (_, y1) = to_display((x, low)), to_display((x, high))
        obstacles.append((px - 4, min(y0, y1), px + 4, max(y0, y1)))
    for x0, y0, x1, y1 in segments:
        (ax, ay), (bx, by) = to_display((x0, y0)), to_display((x1, y1))
        obstacles.append((min(ax, bx) - 1, min(ay, by) - 1, max(ax, bx) + 1, max(ay, by) + 1))
    offsets = [(dx, dy * level) for level in range(9) for dy in ((1,) if level == 0 else (1, -1))
               for dx in (6, -6)]
    offsets = [(dx, -3 + 10 * dy) for dx, dy in offsets] + [(dx, dy) for dx in (40, -40) for dy in (25, -35)]

    def overlap(box: tuple[float, float, float, float]) -> float:
        area = sum(max(0.0, min(box[2], o[2]) - max(box[0], o[0])) * max(0.0, min(box[3], o[3]) - max(box[1], o[1]))
                   for o in obstacles)
        outside = (max(0.0, frame.x0 - box[0]) + max(0.0, box[2] - frame.x1)
                   + max(0.0, frame.y0 - box[1]) + max(0.0, box[3] - frame.y1))
        return area + 1000.0 * outside

    for index in sorted(range(len(points)), key=lambda i: -dots[i][1]):
        x, y, text = points[index]
        best = None
        for dx, dy in offsets:
            annotation = axes.annotate(
                text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=fontsize, parse_math=False,
                ha="left" if dx > 0 else "right", va="bottom",
                arrowprops={"arrowstyle": "-", "color": "0.6", "linewidth": 0.5} if abs(dy) > 12 else None,
            )
            annotation.update_positions(renderer)
            extent = Text.get_window_extent(annotation, renderer)  # the words only, not the leader line
            box = (extent.x0, extent.y0, extent.x1, extent.y1)
            cost = overlap(box)
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, annotation, box)
            else:
                annotation.remove()
            if cost == 0:
                break
        obstacles.append(best[2])


def plot_r1_against_params(
    table: str, measured: pd.DataFrame, published: pd.DataFrame, png_path: Path, svg_path: Path
) -> str:
    """Draw one dataset's figure to ``png_path`` and ``svg_path``; return its caption.

    Published points are drawn only where a measured row has their backbone: on another backbone (the
    offline default's tiny CLIP, say) their numbers mean something else, so they are named in the caption
    and left to the table.
    """
    measured_backbones = list(dict.fromkeys(measured["backbone"]))
    if published.empty:
        drawn_published = published
    else:
        comparable = published["backbone"].map(lambda b: any(same_backbone(b, m) for m in measured_backbones))
        drawn_published = published[comparable.astype(bool)].dropna(subset=["tuned", "t2v_R1"])
    all_tuned = pd.concat([measured["tuned"], drawn_published["tuned"]]).dropna()
    floor = zero_params_floor(all_tuned)
    figure = Figure(figsize=(8.0, 4.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colors = method_colors(measured)
    labels: list[tuple[float, float, str]] = []
    bars: list[tuple[float, float, float]] = []
    segments: list[tuple[float, float, float, float]] = []

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
        segments += step_segments(front_x, front_y)
        for (_, row), px, py in zip(rows.iterrows(), x, y, strict=True):
            low, high = row["t2v_R1_ci_low"], row["t2v_R1_ci_high"]
            # a percentile interval of very few resamples need not hold the mean: a bar never has negative length
            error = None if pd.isna(low) else [[max(0.0, py - low)], [max(0.0, high - py)]]
            label = method_label(row["method"], row["variant"])
            axes.errorbar(
                px,
                py,
                yerr=error,
                fmt="o",
                color=colors[label],
                capsize=3,
            )  # labelled beside its point, not in the legend
            labels.append((px, py, shortened(label)))
            if error is not None:
                bars.append((px, low, high))

    if not drawn_published.empty:
        x = np.maximum(drawn_published["tuned"].to_numpy(float), floor)
        axes.scatter(
            x,
            drawn_published["t2v_R1"],
            facecolors="none",
            edgecolors="black",
            marker="s",
            s=40,
            label="published (same backbone, the papers' own training)",
        )
        for (_, row), px in zip(drawn_published.iterrows(), x, strict=True):
            labels.append((px, float(row["t2v_R1"]),
                           shortened(f"{method_label(row['method'], row['variant'])} (published)")))

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
    legend = axes.legend(fontsize=8, loc="lower right")
    for text in legend.get_texts():
        text.set_parse_math(False)
    place_labels(axes, labels, bars, segments=segments)
    figure.savefig(png_path, dpi=150)
    figure.savefig(svg_path)

    caption = (
        f"{table}: Text→Video R@1 against tuned parameters (log x). Zero tuned parameters (zero_shot) is "
        f"drawn at {_count_label(floor)}, labelled 0. Error bars: 95% bootstrap CI over seeds and queries. Dashed: "
        "Pareto front (best R@1 with at most that many tuned parameters)."
    )
    if not drawn_published.empty:
        caption += " Hollow squares: published numbers on the same backbone (the papers' own training), not part " \
                   "of the front."
    left_out = published[~published.index.isin(drawn_published.index)]
    if not left_out.empty:
        names = ", ".join(
            f"{method_label(r['method'], r['variant'])} ({r['backbone']})"
            for _, r in left_out.iterrows()
        )
        caption += (f" Not drawn: the published rows of another backbone than the measured ones, or without a "
                    f"parameter count ({names}); their numbers are in the table above.")
    return caption


def _count_label(count: float) -> str:
    for threshold, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if count >= threshold:
            return f"{count / threshold:g}{suffix}"
    return f"{count:g}"


def plot_val_curves(table: str, curves: pd.DataFrame, png_path: Path, svg_path: Path) -> str:
    """Val T2V R@1 against training steps, one line per method (mean over seeds; each seed drawn thin when
    there are several); draw to ``png_path`` and ``svg_path`` and return the caption."""
    figure = Figure(figsize=(8.0, 4.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    several_backbones = curves["backbone"].nunique() > 1
    seeds_drawn = 0
    colors = method_colors(curves)
    for (backbone, method, variant), rows in curves.groupby(["backbone", "method", "variant"], sort=False):
        label = method_label(method, variant)
        color = colors[label]
        label = shortened(label + (f" ({backbone})" if several_backbones else ""))
        seeds = rows["seed"].nunique()
        if rows["step"].max() == 0:  # trains nothing: its one value holds at every step
            axes.axhline(rows["t2v_R1"].mean(), color=color, linestyle="--", linewidth=1.2,
                         label=label + " (trains nothing)")
            continue
        if seeds > 1:
            seeds_drawn = max(seeds_drawn, seeds)
            for _, seed_rows in rows.groupby("seed"):
                axes.plot(seed_rows["step"], seed_rows["t2v_R1"], color=color, linewidth=0.6, alpha=0.35)
        mean = rows.groupby("epoch")[["step", "t2v_R1"]].mean()
        marker = "o" if len(mean) > 1 else "s"
        axes.plot(mean["step"], mean["t2v_R1"], color=color, marker=marker, markersize=3, linewidth=1.6,
                  label=label + (f" (mean of {seeds} seeds)" if seeds > 1 else ""))
    axes.set_xlabel("training steps")
    axes.set_ylabel("val Text→Video R@1 (%)")
    axes.set_title(f"{table}: learning curves on the val split", parse_math=False)
    axes.grid(True, alpha=0.3)
    legend = axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    for text in legend.get_texts():
        text.set_parse_math(False)
    figure.savefig(png_path, dpi=150)
    figure.savefig(svg_path)
    caption = (
        f"{table}: Text→Video R@1 on the val split against training steps, measured before training (step 0) "
        "and after every epoch of each test run. A line still rising at its last point was stopped by its "
        "budget. A method that trains nothing is a dashed line at its step-0 value."
    )
    if seeds_drawn:
        caption += " Thick: mean over seeds at each epoch; thin: each seed."
    return caption
