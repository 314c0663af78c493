"""The offline backbone: a registered open_clip config and a cached, reloadable pretraining."""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import pytest
import torch
from safetensors.torch import load_file

from vtrbench.cache import cache_dir
from vtrbench.offline import tiny_clip as offline_clip

TINY_STEPS = 3


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    return offline_clip.build_offline_clip(steps=TINY_STEPS, seed=0, cache_dir=cache, progress=False)


def test_config_is_registered_and_builds() -> None:
    offline_clip.register_offline_config()
    offline_clip.register_offline_config()  # idempotent
    assert offline_clip.OFFLINE_MODEL_NAME in open_clip.list_models()
    model = open_clip.create_model(offline_clip.OFFLINE_MODEL_NAME, pretrained=None)
    assert 1_000_000 < sum(p.numel() for p in model.parameters()) < 20_000_000
    tokenizer = open_clip.get_tokenizer(offline_clip.OFFLINE_MODEL_NAME)
    tokens = tokenizer(["a red circle moves to the right"])
    assert tokens.shape == (1, 32)
    with torch.no_grad():
        image_features = model.encode_image(torch.zeros(2, 3, 32, 32))
        text_features = model.encode_text(tokens)
    assert image_features.shape[1] == text_features.shape[1] == 64


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VTRBENCH_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("VTRBENCH_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "vtrbench"


def test_recipe_hash_changes_with_the_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    assert offline_clip.recipe_hash(steps=10) != offline_clip.recipe_hash(steps=11)
    assert offline_clip.recipe_hash(steps=10, seed=1) != offline_clip.recipe_hash(steps=10, seed=2)
    # found in review: the optimiser's betas and eps, the temperature's cap and the pretraining's code were not
    # in the hash, so a change to any of them reused the old weights
    for constant, value in (("ADAM_BETAS", (0.9, 0.999)), ("ADAM_EPS", 1e-8), ("MAX_LOGIT_SCALE", 50.0),
                            ("PRETRAIN_VERSION", offline_clip.PRETRAIN_VERSION + 1)):
        before = offline_clip.recipe_hash(steps=10)
        with monkeypatch.context() as patch:
            patch.setattr(offline_clip, constant, value)
            assert offline_clip.recipe_hash(steps=10) != before, constant


def test_pretraining_writes_checkpoint_and_metadata(tiny_checkpoint: Path) -> None:
    assert tiny_checkpoint.suffix == ".safetensors" and tiny_checkpoint.is_file()
    assert offline_clip.recipe_hash(steps=TINY_STEPS) in tiny_checkpoint.parent.name
    metadata = json.loads((tiny_checkpoint.parent / offline_clip.METADATA_NAME).read_text())
    assert metadata["recipe"]["steps"] == TINY_STEPS
    assert metadata["zero_shot_candidates"] > 1
    assert 0.0 <= metadata["zero_shot_image_to_caption_top1"] <= 1.0
    assert metadata["parameters"] > 0 and metadata["pretrain_seconds"] >= 0
    # Nothing half-written is left beside the finished folder.
    assert [p.name for p in tiny_checkpoint.parent.parent.iterdir() if p.name.startswith(".")] == []


def test_checkpoint_reloads_through_open_clip_with_identical_weights(tiny_checkpoint: Path) -> None:
    offline_clip.register_offline_config()
    model = open_clip.create_model(offline_clip.OFFLINE_MODEL_NAME, pretrained=str(tiny_checkpoint))
    saved = load_file(str(tiny_checkpoint))
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, saved[name]), name


def test_a_cached_checkpoint_is_not_trained_again(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("pretrained again")

    monkeypatch.setattr(offline_clip, "pretrain_offline_clip", fail)
    cache = tiny_checkpoint.parents[2]
    again = offline_clip.build_offline_clip(steps=TINY_STEPS, seed=0, cache_dir=cache, progress=False)
    assert again == tiny_checkpoint


def test_pretraining_is_deterministic(tiny_checkpoint: Path, tmp_path: Path) -> None:
    again = offline_clip.pretrain_offline_clip(tmp_path, steps=TINY_STEPS, seed=0, progress=False)
    first, second = load_file(str(tiny_checkpoint)), load_file(str(again))
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_a_killed_pretraining_leaves_no_folder_behind_the_next_one(tmp_path: Path) -> None:
    """SIGTERM or kill -9 skip the staging folder's cleanup; the next pretraining, holding the lock, removes
    what such a run left (before, every killed run left a hidden folder in the cache for good)."""
    target = tmp_path / "offline_clip" / f"{offline_clip.OFFLINE_MODEL_NAME}-{offline_clip.recipe_hash(TINY_STEPS, 1)}"
    target.parent.mkdir(parents=True)
    leftover = target.parent / f".{target.name}.killed1"
    leftover.mkdir()
    (leftover / "half_written.safetensors").write_bytes(b"x")
    other = target.parent / ".another-recipe.killed2"  # another recipe's: not this lock's to remove
    other.mkdir()
    checkpoint = offline_clip.build_offline_clip(steps=TINY_STEPS, seed=1, cache_dir=tmp_path, progress=False)
    assert checkpoint.is_file() and not leftover.exists() and other.is_dir()
    assert sorted(p.name for p in target.parent.iterdir()) == sorted([target.name, target.name + ".lock", other.name])


@pytest.mark.parametrize("damage", ["gone", "cut"])
def test_a_checkpoint_gone_or_cut_short_is_pretrained_again(tmp_path: Path, capsys, damage: str) -> None:
    """Found in review: with the weights gone beside metadata.json, every call pretrained and then failed to
    rename onto the folder (ENOTEMPTY); a truncated file failed each run with safetensors' own traceback."""
    checkpoint = offline_clip.build_offline_clip(steps=TINY_STEPS, seed=2, cache_dir=tmp_path, progress=False)
    whole = checkpoint.read_bytes()
    if damage == "gone":
        checkpoint.unlink()
    else:
        checkpoint.write_bytes(whole[: len(whole) // 2])
    again = offline_clip.build_offline_clip(steps=TINY_STEPS, seed=2, cache_dir=tmp_path, progress=False)
    assert again == checkpoint and checkpoint.read_bytes() == whole  # deterministic: the same weights
    assert "missing or unreadable; pretraining the offline backbone again" in capsys.readouterr().err
