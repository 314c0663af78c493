"""The README's figures that code computes are the code's: every tuned-parameter count of its "Methods" table
is what `vtrbench params NAME --backbone ViT-B-32 data.num_frames=12 [options]` prints (the command the README
gives for them), so the table cannot drift from the methods."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from vtrbench.benchmark.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
ROW = re.compile(r"^\| `(\w+)` \| .* \| ([^|]+) \|$")
# "827,392 (`latent=linear`)", "122,880 (`base`, `F`)", "+171,008 with `train_clip_biases=true`"
ITEM = re.compile(r"(\+?)([\d,]+)(?: \((.*)\)| with `([^`]+)`)?")


def methods_table() -> list[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("\n| method | what it tunes"):]
    table = table[1:table.index("\n\n")]
    rows = [ROW.match(line) for line in table.splitlines()[2:]]
    assert all(rows), "a row of the README's Methods table is not `| `name` | ... | counts |`"
    return [(row.group(1), row.group(2)) for row in rows]


def documented_counts() -> list[tuple[str, list[str], int, bool]]:
    """(method, its options, the count, whether the count is a difference to the default's)."""
    counts = []
    for method, cell in methods_table():
        for item in cell.split("; "):
            match = ITEM.fullmatch(item.strip())
            assert match, f"{method}: cannot read {item!r} as a count"
            plus, number, notes, option = match.groups()
            variants = [[option]] if option else []
            for note in (notes or "").split(", "):
                if note.startswith("`"):  # `latent=linear` is an option, `C` a variant
                    name = note.strip("`")
                    variants.append([name if "=" in name else f"variant={name}"])
            for options in variants or [[]]:  # `base`, `F`: one count, two variants
                counts.append((method, options, int(number.replace(",", "")), bool(plus)))
    return counts


def tuned(method: str, options: list[str], capsys: pytest.CaptureFixture) -> int:
    assert main(["params", method, "--backbone", "ViT-B-32", "data.num_frames=12", *options]) == 0
    return json.loads(capsys.readouterr().out)["tuned"]


def test_the_methods_table_lists_every_registered_method():
    from vtrbench.registry import METHODS

    builtin = {name for name in METHODS.names() if METHODS.get(name).__module__.startswith("vtrbench.methods.")}
    assert sorted(method for method, _ in methods_table()) == sorted(builtin)


@pytest.mark.parametrize(("method", "options", "count", "difference"), documented_counts(),
                         ids=lambda value: str(value))
def test_a_documented_count_is_what_params_prints(method, options, count, difference, capsys):
    printed = tuned(method, options, capsys)
    if difference:
        printed -= tuned(method, [], capsys)
    assert printed == count
