"""The offline world: what the suite runs on where no real weights or videos can be downloaded.

- `world.py`: coloured shapes in still images (captioned by appearance) and in clips (captioned by events);
- `tiny_clip.py`: the small open_clip model `vtrbench-tiny`, pretrained here on the still images, registered
  as a backbone;
- `writer.py` and one module per dataset format (`msrvtt.py`, `vatex.py`, `lsmdc.py`, `activitynet.py`):
  the clips written in each dataset's real layout, registered as that dataset's offline data root.

Methods and datasets know nothing of this room beyond the registries (`BACKBONES`, `DATA_ROOTS`).
"""
