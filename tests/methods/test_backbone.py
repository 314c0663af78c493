"""The backbone's MLP activation is the one its weights were trained with (`backbone.quick_gelu`), read from
the modules built. No network: a local stand-in file takes the place of open_clip's download."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path

import open_clip
import open_clip.factory
import pytest
import torch
from open_clip.model import CLIP
from open_clip.transformer import QuickGELU
from torch import nn

from vtrbench.benchmark.cli import main as vtrbench_main
from vtrbench.methods.backbone import auto_quick_gelu, load_backbone, parse_quick_gelu

STANDIN_VALUE = 0.25  # exact in fp16


@pytest.fixture(scope="module")
def standin_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Factory: a checkpoint file with every key and shape of architecture `name`'s state dict, each tensor a
    broadcast fp16 STANDIN_VALUE. torch.save keeps an expanded tensor's one-element storage, so even ViT-B-32
    takes a few KB, and open_clip loads it through its ordinary path (torch.load, load_state_dict)."""
    folder = tmp_path_factory.mktemp("standin")

    def make(name: str) -> Path:
        path = folder / f"{name}.pt"
        if not path.exists():
            with torch.device("meta"):  # shapes only, no memory, no init
                shapes = CLIP(**open_clip.get_model_config(name)).state_dict()
            one = torch.full((), STANDIN_VALUE, dtype=torch.float16)
            torch.save({key: one.expand(value.shape) for key, value in shapes.items()}, path)
        return path

    return make


def mlp_activations(model: nn.Module) -> list[type]:
    blocks = [*model.visual.transformer.resblocks, *model.transformer.resblocks]
    return [type(block.mlp.gelu) for block in blocks]


def test_openai_tag_builds_quick_gelu_in_every_block_of_both_towers(standin_checkpoint, monkeypatch):
    requested = []

    def download(pretrained_cfg: dict, cache_dir: str | None = None, **_: object) -> str:
        requested.append(pretrained_cfg)
        return str(standin_checkpoint("ViT-B-32"))

    monkeypatch.setattr(open_clip.factory, "download_pretrained", download)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backbone = load_backbone("ViT-B-32", "openai")
    assert requested == [open_clip.get_pretrained_cfg("ViT-B-32", "openai")]
    assert torch.all(backbone.model.visual.conv1.weight == STANDIN_VALUE)  # the stand-in's weights were loaded
    assert mlp_activations(backbone.model) == [QuickGELU] * 24
    assert backbone.activation == "quick_gelu"
    assert not [w for w in caught if "QuickGELU mismatch" in str(w.message)]  # open_clip agrees with the tag


def test_auto_follows_the_tag_else_the_architecture():
    assert auto_quick_gelu("ViT-B-32", "openai") is True
    assert auto_quick_gelu("ViT-B-32", "laion2b_s34b_b79k") is False
    assert auto_quick_gelu("ViT-B-32", "/weights/ViT-B-32.pt") is False  # a file: the architecture's GELU
    assert auto_quick_gelu("ViT-B-32-quickgelu", "/weights/ViT-B-32.pt") is True
    # a tag that sets no flag on an architecture defined with QuickGELU keeps it
    assert auto_quick_gelu("roberta-ViT-B-32", "laion2b_s12b_b32k") is True


@pytest.mark.parametrize(("setting", "expected"), [("true", QuickGELU), ("false", nn.GELU), ("auto", nn.GELU)])
def test_a_checkpoint_file_follows_backbone_quick_gelu(setting, expected, standin_checkpoint):
    path = standin_checkpoint("ViT-S-32")
    backbone = load_backbone("ViT-S-32", str(path), setting)
    assert torch.all(backbone.model.visual.proj == STANDIN_VALUE)
    assert mlp_activations(backbone.model) == [expected] * 24
    assert backbone.activation == ("quick_gelu" if expected is QuickGELU else "gelu")


def test_settings_as_yaml_gives_them_and_refusals(standin_checkpoint):
    # YAML and the command line turn `true` into a boolean, which the string-typed key stores as 'True'
    assert [parse_quick_gelu(v) for v in (True, "True", "false", "auto", None)] == [True, True, False, None, None]
    with pytest.raises(ValueError, match=r"backbone.quick_gelu=false contradicts .*backbone.name=ViT-B-32\)"):
        load_backbone("ViT-B-32-quickgelu", str(standin_checkpoint("ViT-B-32")), "false")
    with pytest.raises(ValueError, match="leave backbone.quick_gelu=auto"):
        load_backbone("vtrbench-tiny", "random", "true")
    with pytest.raises(ValueError, match="expected one of auto, true, false"):
        parse_quick_gelu("maybe")
    # the default pretrained=offline with another backbone says what to give instead
    with pytest.raises(ValueError, match=r"offline exists only for backbone vtrbench-tiny, not 'ViT-B-32': give "
                                         r"ViT-B-32 an open_clip tag .*a checkpoint path, or 'random'"):
        load_backbone("ViT-B-32", "offline")


def test_list_backbones_shows_the_activation_each_weights_expect(capsys):
    assert vtrbench_main(["list", "backbones"]) == 0
    rows = {tuple(re.split(r"\s{2,}", line.strip())) for line in capsys.readouterr().out.splitlines()[1:]}
    assert ("ViT-B-32", "openai", "quick_gelu", "open_clip tag") in rows
    assert ("ViT-B-32", "laion2b_s34b_b79k", "gelu", "open_clip tag") in rows
    assert ("ViT-B-32", "random | FILE", "gelu", "open_clip architecture") in rows
    assert ("ViT-B-32-quickgelu", "random | FILE", "quick_gelu", "open_clip architecture") in rows
    assert ("vtrbench-tiny", "offline | random | FILE", "gelu", "vtrbench (offline default)") in rows
