"""The open_clip backbone every method adapts: a model name plus where its weights come from.

`pretrained` is one of
- an open_clip tag (`openai`, `laion2b_s34b_b79k`, ...) or a local checkpoint file;
- `offline`: the package's own small CLIP (only for `vtrbench-tiny`, which the offline room registers in
  `BACKBONES`), pretrained here on generated images;
- `random`: an explicit random init, for counting parameters and timing benchmarks only.
A real run never silently falls back to random weights: an unknown tag or a missing file is an error.

The MLP activation (`quick_gelu`, the `backbone.quick_gelu` key) is the one the weights were trained with:
- `auto` (default): an open_clip tag brings its own flag (open_clip's pretrained config, `quick_gelu: True`
  for OpenAI's weights); a checkpoint file, `random`, or a tag without the flag takes the architecture's
  config as it is (`ViT-B-32`: GELU, `ViT-B-32-quickgelu`: QuickGELU). `vtrbench-tiny` is built from its
  own config, the one its offline weights were pretrained with (GELU), and takes no other setting.
- `true` / `false`: force it (open_clip's `force_quick_gelu`), e.g. for a checkpoint file of OpenAI's weights.
  `false` is refused for an architecture defined with QuickGELU (a `-quickgelu` name): use the name without
  the suffix instead.
open_clip itself never applies a tag's flag: `create_model('ViT-B-32', pretrained='openai')` builds nn.GELU
and only warns, so OpenAI's weights would run with an activation they were never trained with.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from vtrbench.ranking import RANDOM_PRETRAINED  # `backbone.pretrained=random`: no pretrained weights
from vtrbench.registry import BACKBONES, UnknownNameError

OFFLINE_PRETRAINED = "offline"
QUICK_GELU_SETTINGS = ("auto", "true", "false")


@dataclass
class Backbone:
    """An open_clip CLIP model with what the harness needs to feed it."""

    name: str
    pretrained: str
    model: nn.Module  # open_clip.model.CLIP
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_elements: int  # parameter elements of the pretrained model, before any method touches it

    @property
    def activation(self) -> str:
        """The MLP activation the model computes, read from its modules (see `mlp_activation`)."""
        return mlp_activation(self.model)

    def tokenizer(self, context_length: int) -> Any:
        return shared_tokenizer(self.name, context_length)


@functools.lru_cache(maxsize=8)
def shared_tokenizer(name: str, context_length: int) -> Any:
    """open_clip's tokenizer of a model, one object per (name, context length) in a process: a worker that
    runs many runs tokenises each split's captions once (benchmark/data.py's `tokenize` caches by it)."""
    import open_clip

    return open_clip.get_tokenizer(name, context_length=context_length)


def mlp_activation(model: nn.Module) -> str:
    """`quick_gelu` or `gelu` (`gelu_tanh` for the tanh approximation): the activation modules the model holds,
    both towers together; several kinds are joined by `+`, none found is `unknown`."""
    from open_clip.transformer import QuickGELU

    found = set()
    for module in model.modules():
        if isinstance(module, QuickGELU):
            found.add("quick_gelu")
        elif isinstance(module, nn.GELU):
            found.add("gelu" if module.approximate == "none" else f"gelu_{module.approximate}")
    return "+".join(sorted(found)) or "unknown"


def parse_quick_gelu(setting: str | bool | None) -> bool | None:
    """`backbone.quick_gelu` -> True / False (forced) or None (`auto`). YAML and the command line give
    `true` as a boolean, which the string-typed key stores as 'True'."""
    value = "auto" if setting is None else str(setting).strip().lower()
    if value not in QUICK_GELU_SETTINGS:
        raise ValueError(f"backbone.quick_gelu={setting!r}: expected one of {', '.join(QUICK_GELU_SETTINGS)}")
    return None if value == "auto" else value == "true"


def architecture_quick_gelu(name: str) -> bool:
    """Whether open_clip's architecture config `name` is defined with QuickGELU (`-quickgelu` names)."""
    import open_clip

    return bool((open_clip.get_model_config(name) or {}).get("quick_gelu", False))


def auto_quick_gelu(name: str, pretrained: str) -> bool:
    """What `backbone.quick_gelu=auto` builds for open_clip architecture `name`: QuickGELU where the tag's
    pretrained config says its weights were trained with it (`openai`, `laion400m_e32`, `metaclip_*`, ...),
    else the architecture's own config (a file, `random`, or a tag that sets no flag)."""
    import open_clip

    tag_flag = open_clip.get_pretrained_cfg(name, pretrained).get("quick_gelu", False)
    return bool(tag_flag) or architecture_quick_gelu(name)


def untrained_model(name: str, force_quick_gelu: bool = False) -> nn.Module:
    """An open_clip model with random weights, asked for on purpose (counting, timing, pretraining)."""
    import logging

    import open_clip

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # open_clip warns that no weights were loaded: here that is the request
    try:
        return open_clip.create_model(name, pretrained=None, force_quick_gelu=force_quick_gelu)
    finally:
        logging.disable(previous)


def error_reason(err: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, cut at `limit` characters: torch's state-dict errors span lines,
    and which keys are missing is on the second."""
    reason = " ".join(str(err).split()) or type(err).__name__
    return reason[:limit] + " ..." if len(reason) > limit else reason


def _open_clip_model(name: str, pretrained: str, quick_gelu: bool | None) -> nn.Module:
    """`quick_gelu`: True / False forced, None = the tag's own flag, else the architecture's config."""
    import open_clip

    if not pretrained:
        raise ValueError(
            f"backbone {name!r} needs backbone.pretrained: an open_clip tag (e.g. openai), a checkpoint path, "
            f"or 'random' for an explicitly untrained model"
        )
    if pretrained == OFFLINE_PRETRAINED:
        raise ValueError(f"backbone.pretrained=offline exists only for backbone vtrbench-tiny, not {name!r}: give "
                         f"{name} an open_clip tag (`vtrbench list backbones`, e.g. openai), a checkpoint path, "
                         f"or 'random'")
    if quick_gelu is False and architecture_quick_gelu(name):
        plain = name.removesuffix("-quickgelu")
        raise ValueError(
            f"backbone.quick_gelu=false contradicts backbone.name={name!r}, an architecture defined with "
            f"QuickGELU; for GELU use an architecture without it"
            + (f" (backbone.name={plain})" if plain != name and plain in open_clip.list_models() else "")
        )
    if quick_gelu is None:
        quick_gelu = auto_quick_gelu(name, pretrained)
    if pretrained == RANDOM_PRETRAINED:
        return untrained_model(name, force_quick_gelu=bool(quick_gelu))
    known_tags = {tag for model, tag in open_clip.list_pretrained() if model == name}
    looks_like_path = any(sep in pretrained for sep in ("/", "\\")) or Path(pretrained).suffix != ""
    if looks_like_path and not Path(pretrained).is_file():
        raise FileNotFoundError(f"backbone.pretrained: checkpoint file {pretrained!r} does not exist")
    if not looks_like_path and pretrained not in known_tags:
        raise ValueError(
            f"backbone.pretrained: {pretrained!r} is neither a file nor an open_clip tag of {name!r} "
            f"(tags: {', '.join(sorted(known_tags)) or 'none'})"
        )
    # open_clip only warns when a tag's flag and the architecture disagree; force_quick_gelu applies it
    try:
        return open_clip.create_model(name, pretrained=pretrained, require_pretrained=True,
                                      force_quick_gelu=bool(quick_gelu))
    except Exception as err:
        if looks_like_path:
            raise  # load_backbone names the file
        reason = error_reason(err)
        raise ValueError(
            f"backbone.pretrained={pretrained}: the weights of open_clip's {name} tag {pretrained!r} could not be "
            f"downloaded ({reason}); without internet, copy the checkpoint file here and pass its path, e.g. "
            f"backbone.pretrained=/weights/{name}-{pretrained}.bin (preset=paper sets backbone.quick_gelu=true "
            f"for OpenAI's weights)") from err


def backbone_names() -> list[str]:
    import open_clip

    return sorted(set(BACKBONES.names()) | set(open_clip.list_models()))


def backbone_rows() -> list[tuple[str, str, str, str]]:
    """(backbone, weights, activation built under backbone.quick_gelu=auto, source), for `vtrbench list
    backbones`: one row per open_clip tag (the activation its weights were trained with), one for a file or
    random init (the architecture's own), and the package's own backbones as built (they are small)."""
    import open_clip

    tags: dict[str, list[str]] = {}
    for model, tag in open_clip.list_pretrained():
        tags.setdefault(model, []).append(tag)

    def name(quick_gelu: bool) -> str:
        return "quick_gelu" if quick_gelu else "gelu"

    rows = []
    for backbone in backbone_names():
        if backbone in BACKBONES:
            activation = mlp_activation(BACKBONES.get(backbone)(RANDOM_PRETRAINED))
            rows.append((backbone, f"{OFFLINE_PRETRAINED} | {RANDOM_PRETRAINED} | FILE", activation,
                         "vtrbench (offline default)"))
            continue
        for tag in tags.get(backbone, []):
            rows.append((backbone, tag, name(auto_quick_gelu(backbone, tag)), "open_clip tag"))
        rows.append((backbone, f"{RANDOM_PRETRAINED} | FILE", name(architecture_quick_gelu(backbone)),
                     "open_clip architecture"))
    return rows


def load_backbone(
    name: str, pretrained: str, quick_gelu: str | bool | None = "auto", progress: bool = False
) -> Backbone:
    """Build the backbone `name` with weights from `pretrained` and the activation `quick_gelu` says
    (`auto`, `true`, `false`; see the module docstring); `progress` lets a registered backbone that builds its
    weights on first use (the offline one) say so. A file that is no checkpoint of this model is one line
    naming the file (`ValueError`)."""
    forced = parse_quick_gelu(quick_gelu)
    try:
        if name in BACKBONES:
            if forced is not None:
                raise ValueError(
                    f"backbone.quick_gelu={str(forced).lower()}: backbone {name!r} is built from its own config, "
                    f"with the activation its weights were trained with; leave backbone.quick_gelu=auto"
                )
            model = BACKBONES.get(name)(pretrained, progress=progress)
        else:
            import open_clip

            if name not in open_clip.list_models():
                raise UnknownNameError(BACKBONES.unknown_message(name, extra=open_clip.list_models()))
            model = _open_clip_model(name, pretrained, forced)
    except (UnknownNameError, FileNotFoundError, ValueError):
        raise
    except Exception as err:  # a file that is no checkpoint of this model: torch, safetensors or open_clip
        if not Path(pretrained).expanduser().is_file():
            raise
        reason = error_reason(err)
        raise ValueError(f"backbone.pretrained: {pretrained}: cannot load it as {name} weights ({reason})") \
            from err
    model.eval()
    cfg = model.visual.preprocess_cfg
    size = cfg["size"]
    image_size = size if isinstance(size, int) else int(size[0])
    return Backbone(
        name=name,
        pretrained=pretrained,
        model=model,
        image_size=image_size,
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        num_elements=sum(p.numel() for p in model.parameters()),
    )


def text_width(model: nn.Module) -> int:
    return model.transformer.width


def visual_width(model: nn.Module) -> int:
    return model.visual.transformer.width
