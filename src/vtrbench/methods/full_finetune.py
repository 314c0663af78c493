"""full_finetune (CLIP4Clip meanP): every backbone parameter trains, except the shared frozen temperature."""

from typing import Any

from vtrbench.methods.backbone import Backbone
from vtrbench.methods.base import RetrievalMethod
from vtrbench.registry import METHODS


@METHODS.register("full_finetune")
class FullFinetune(RetrievalMethod):
    def __init__(self, backbone: Backbone, config: Any = None):
        super().__init__(backbone, config)
        self.clip.requires_grad_(True)
        # The similarity's temperature is part of the shared protocol (docs/methods.md), frozen for every method.
        self.clip.logit_scale.requires_grad_(False)
