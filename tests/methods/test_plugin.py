"""A method from another distribution: installed with pip, found through the `vtrbench.methods` entry point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vtrbench-example-method"


def run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    # built from a copy: setuptools leaves build/ and *.egg-info beside the sources it builds
    source = shutil.copytree(EXAMPLE, tmp_path_factory.mktemp("src") / EXAMPLE.name)
    target = tmp_path_factory.mktemp("site")
    run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(source)], dict(os.environ))
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))}


def test_installed_plugin_is_listed_with_its_distribution(plugin_env):
    listed = run([sys.executable, "-m", "vtrbench", "list", "methods"], plugin_env)
    rows = {line.split(maxsplit=2)[0]: line.split(maxsplit=2)[1:] for line in listed.splitlines() if line.strip()}
    # name, source, and what it is: the first clause of its module's docstring
    assert rows["example_adapter"] == ["vtrbench-example-method",
                                       "a residual MLP adapter on CLIP's projected text and frame embeddings"]
    assert rows["dgl"][0] == "vtrbench" and rows["dgl"][1].startswith("Dynamic Global-Local prompt tuning")
    # aligned: the plugin's package name is longer than "vtrbench", and every line's summary starts where
    # the others' do
    starts = {line.index(summary) for line in listed.splitlines() if line.strip()
              for summary in [line.split(maxsplit=2)[2]]}
    assert len(starts) == 1, listed


def test_installed_plugin_counts_its_parameters(plugin_env):
    out = run([sys.executable, "-m", "vtrbench", "params", "example_adapter", "hidden=16",
               "--backbone", "vtrbench-tiny"], plugin_env)
    counts = json.loads(out)
    dim, hidden = 64, 16  # vtrbench-tiny's embed_dim; two adapters of down (dim x hidden) + up (hidden x dim)
    assert counts["method"] == "example_adapter"
    assert counts["tuned"] == 2 * (dim * hidden + hidden + hidden * dim + dim)
