"""The open_clip backbone every method adapts: a model name plus where its weights come from.

`pretrained` is one of
- an open_clip tag (`openai`, `laion2b_s34b_b79k`, ...) or a local checkpoint file;
- `offline`: the package's own small CLIP (only for `vtrbench-tiny`, which the offline room registers in
  `BACKBONES`), pretrained here on generated images;
- `random`: an explicit random init, for counting parameters and timing benchmarks only.
A real run never silently falls back to random weights: an unknown tag or a missing file is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from vtrbench.registry import BACKBONES, UnknownNameError

OFFLINE_PRETRAINED = "offline"
RANDOM_PRETRAINED = "random"


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

    def tokenizer(self, context_length: int) -> Any:
        import open_clip

        return open_clip.get_tokenizer(self.name, context_length=context_length)


def untrained_model(name: str) -> nn.Module:
    """An open_clip model with random weights, asked for on purpose (counting, timing, pretraining)."""
    import logging

    import open_clip

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # open_clip warns that no weights were loaded: here that is the request
    try:
        return open_clip.create_model(name, pretrained=None)
    finally:
        logging.disable(previous)


def _open_clip_model(name: str, pretrained: str) -> nn.Module:
    import open_clip

    if not pretrained:
        raise ValueError(
            f"backbone {name!r} needs backbone.pretrained: an open_clip tag (e.g. openai), a checkpoint path, "
            f"or 'random' for an explicitly untrained model"
        )
    if pretrained == OFFLINE_PRETRAINED:
        raise ValueError(f"pretrained=offline exists only for backbone vtrbench-tiny, not {name!r}")
    if pretrained == RANDOM_PRETRAINED:
        return untrained_model(name)
    known_tags = {tag for model, tag in open_clip.list_pretrained() if model == name}
    looks_like_path = any(sep in pretrained for sep in ("/", "\\")) or Path(pretrained).suffix != ""
    if looks_like_path and not Path(pretrained).is_file():
        raise FileNotFoundError(f"backbone.pretrained: checkpoint file {pretrained!r} does not exist")
    if not looks_like_path and pretrained not in known_tags:
        raise ValueError(
            f"backbone.pretrained: {pretrained!r} is neither a file nor an open_clip tag of {name!r} "
            f"(tags: {', '.join(sorted(known_tags)) or 'none'})"
        )
    return open_clip.create_model(name, pretrained=pretrained, require_pretrained=True)


def backbone_names() -> list[str]:
    import open_clip

    return sorted(set(BACKBONES.names()) | set(open_clip.list_models()))


def load_backbone(name: str, pretrained: str, progress: bool = False) -> Backbone:
    """Build the backbone `name` with weights from `pretrained` (see the module docstring); `progress` lets a
    registered backbone that builds its weights on first use (the offline one) say so."""
    try:
        if name in BACKBONES:
            model = BACKBONES.get(name)(pretrained, progress=progress)
        else:
            import open_clip

            if name not in open_clip.list_models():
                raise UnknownNameError(BACKBONES.unknown_message(name, extra=open_clip.list_models()))
            model = _open_clip_model(name, pretrained)
    except (UnknownNameError, FileNotFoundError, ValueError):
        raise
    except Exception as err:  # a file that is no checkpoint of this model: torch, safetensors or open_clip
        if not Path(pretrained).expanduser().is_file():
            raise
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
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
