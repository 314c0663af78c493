"""The R@1-against-parameters figure: labels that never overlap, published points only on their backbone."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vtrbench.reports.plots import (
    method_colors,
    place_labels,
    plot_r1_against_params,
    plot_val_curves,
    step_segments,
)


def test_labels_of_clustered_points_do_not_overlap() -> None:
    figure = Figure(figsize=(8.0, 4.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_xscale("log")
    # dgl and linear_probe drew over each other: near-equal parameter counts and R@1
    points = [(8.3e5, 4.2, "dgl"), (6.6e5, 4.2, "linear_probe"), (1.7e5, 4.2, "bitfit"),
              (8.6e4, 9.4, "separate_prompt"), (2.0e6, 12.5, "lora"), (1.5e8, 19.8, "full_finetune"),
              (7e5, 4.0, "cross_modal_adapter")]
    axes.scatter([p[0] for p in points], [p[1] for p in points])
    axes.set_xlim(1e4, 1e9)
    axes.set_ylim(0, 25)
    place_labels(axes, points)
    renderer = figure.canvas.get_renderer()
    boxes = [text.get_window_extent(renderer) for text in axes.texts]
    assert sorted(text.get_text() for text in axes.texts) == sorted(p[2] for p in points)
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), "two labels overlap"


def test_labels_keep_off_the_pareto_front() -> None:
    figure = Figure(figsize=(8.0, 4.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_xscale("log")
    # the front runs level to the right of each point, where a label is tried first
    x, y = np.array([1e4, 1e5, 1e6, 1e8]), np.array([5.0, 10.0, 15.0, 20.0])
    axes.step(x, y, where="post")
    axes.set_xlim(1e3, 1e9)
    axes.set_ylim(0, 25)
    segments = step_segments(x, y)
    assert len(segments) == 6 and segments[0] == (1e4, 5.0, 1e5, 5.0) and segments[1] == (1e5, 5.0, 1e5, 10.0)
    place_labels(axes, [(a, b, f"method {i}") for i, (a, b) in enumerate(zip(x, y, strict=True))],
                 segments=segments)
    renderer = figure.canvas.get_renderer()
    to_display = axes.transData.transform
    for text in axes.texts:
        box = text.get_window_extent(renderer)
        for x0, y0, x1, y1 in segments:
            (ax, ay), (bx, by) = to_display((x0, y0)), to_display((x1, y1))
            crosses = box.x0 < max(ax, bx) and min(ax, bx) < box.x1 and box.y0 < max(ay, by) and min(ay, by) < box.y1
            assert not crosses, f"{text.get_text()} lies on the front"


def measured_row(method: str, tuned: float, r1: float, backbone: str) -> dict:
    return {"method": method, "variant": "", "backbone": backbone, "tuned": tuned, "t2v_R1": r1,
            "t2v_R1_ci_low": r1 - 2, "t2v_R1_ci_high": r1 + 2}


def published_row(method: str, tuned: float, r1: float) -> dict:
    return {"method": method, "variant": "", "backbone": "ViT-B/32", "tuned": tuned, "t2v_R1": r1, "source": "x"}



def test_published_points_are_drawn_only_beside_rows_of_their_backbone(tmp_path: Path) -> None:
    published = pd.DataFrame([published_row("dgl", 8.3e5, 44.7), published_row("full_finetune", 1.2e8, 43.1)])
    offline = pd.DataFrame([measured_row("zero_shot", 0, 3.0, "vtrbench-tiny"),
                            measured_row("dgl", 5e4, 9.0, "vtrbench-tiny")])
    caption = plot_r1_against_params("msrvtt", offline, published, tmp_path / "a.png", tmp_path / "a.svg")
    assert "Not drawn" in caption and "dgl (ViT-B/32)" in caption and "full_finetune (ViT-B/32)" in caption
    assert "(published)" not in (tmp_path / "a.svg").read_text()

    real = pd.DataFrame([measured_row("zero_shot", 0, 30.1, "ViT-B-32"), measured_row("dgl", 8.3e5, 44.0, "ViT-B-32")])
    caption = plot_r1_against_params("msrvtt", real, published, tmp_path / "b.png", tmp_path / "b.svg")
    assert "Not drawn" not in caption and "Hollow squares" in caption
    assert (tmp_path / "b.svg").read_text().count("(published)") == 2
    assert np.isfinite(real["t2v_R1"]).all()


def test_eleven_methods_get_eleven_colours_the_same_in_both_figures(tmp_path: Path) -> None:
    # with matplotlib's 10-colour cycle the eleventh method (full_finetune here) took zero_shot's colour
    methods = ["zero_shot", "linear_probe", "separate_prompt", "dgl", "vop", "lora", "bitfit",
               "cross_modal_adapter", "mv_adapter", "adaptformer", "full_finetune"]
    measured = pd.DataFrame([measured_row(m, 1e4 * (i + 1), 3.0 + i, "vtrbench-tiny") for i, m in enumerate(methods)])
    colors = method_colors(measured)
    assert len(set(colors.values())) == len(methods)
    no_published = pd.DataFrame(columns=list(published_row("x", 1, 1)))
    plot_r1_against_params("msrvtt", measured, no_published, tmp_path / "a.png", tmp_path / "a.svg")
    curves = pd.DataFrame([{"backbone": "vtrbench-tiny", "method": m, "variant": "", "seed": 0, "epoch": e,
                            "step": 78 * e, "t2v_R1": 3.0 + i + e} for i, m in enumerate(methods) for e in range(3)])
    plot_val_curves("msrvtt", curves, tmp_path / "c.png", tmp_path / "c.svg")
    for svg in ("a.svg", "c.svg"):
        text = (tmp_path / svg).read_text()
        assert all(color in text for color in colors.values()), svg
