"""linear_probe: only CLIP's two final projections train (visual `proj` and `text_projection`).

Everything below them is frozen and input-independent of training, so the harness computes the trunk
features once per clip and caption and trains the projections on the cache (`frozen_trunk`); the base
class's heads already apply exactly these two matrices (EOT text vector, meanP video vector).
"""

from typing import Any

from vtrbench.methods.backbone import Backbone
from vtrbench.methods.base import RetrievalMethod
from vtrbench.registry import METHODS


@METHODS.register("linear_probe")
class LinearProbe(RetrievalMethod):
    frozen_trunk = True

    def __init__(self, backbone: Backbone, config: Any = None):
        super().__init__(backbone, config)
        self.clip.visual.proj.requires_grad_(True)
        self.clip.text_projection.requires_grad_(True)
