"""zero_shot: frozen CLIP, meanP video vector. Nothing trains; the floor every method must clear."""

from vtrbench.methods.base import RetrievalMethod
from vtrbench.registry import METHODS


@METHODS.register("zero_shot")
class ZeroShot(RetrievalMethod):
    frozen_trunk = True
