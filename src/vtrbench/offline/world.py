"""The generated world of coloured shapes: what its images and clips look like and how they are captioned.

Real CLIP weights and real videos cannot be fetched offline, so the suite carries its own small world:
- `render_image_caption_pairs` draws still images captioned by APPEARANCE only (colour, shape, size,
  position). They pretrain the offline backbone (`tiny_clip.py`): an image-text model that knows appearance
  and has never seen time.
- `sample_clips` + `render_clip` draw short clips whose captions are about TIME as well (direction of motion,
  appearing, disappearing, flashing, standing still). The format modules (`msrvtt.py`, `vatex.py`, ...)
  write them to disk in each dataset's real annotation layout, so the harness reads them with the same
  loaders as the real datasets.

Every temporal fact leaves evidence inside single frames as well as in their order: the baseline video
vector is a mean over frames (blind to frame order), so a clip moving left and the same clip reversed would
otherwise be indistinguishable. A moving object drags a fading trail behind it, an appearing object is
surrounded by a white ring, a disappearing object turns hollow, a flashing object is absent from some frames.
A static-image model has never seen any of these cues; a model tuned on the training clips can learn them.
Test clips come in groups that share colour and shape and differ only in their event, so appearance alone
cannot solve the test split.

Shapes are drawn from float coordinates (fractions of the frame), so one scene renders at any size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Bump when drawing, sampling or captions change: a version is part of what cached data and weights depend on.
IMAGES_VERSION = 1  # the still images and captions that pretrain the offline backbone
CLIPS_VERSION = 2  # the captioned clips of the generated datasets

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 80, 235),
    "yellow": (235, 220, 50),
    "purple": (150, 60, 200),
    "orange": (245, 140, 30),
    "white": (240, 240, 240),
    "cyan": (40, 210, 220),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross")
SIZES: dict[str, float] = {"small": 0.10, "big": 0.17}  # radius as a fraction of the frame side
POSITIONS: dict[str, tuple[float, float]] = {
    "on the left": (0.27, 0.5),
    "on the right": (0.73, 0.5),
    "at the top": (0.5, 0.27),
    "at the bottom": (0.5, 0.73),
    "in the center": (0.5, 0.5),
}
# Pairs of positions that two objects in one image can take without overlapping.
POSITION_PAIRS: tuple[tuple[str, str], ...] = (("on the left", "on the right"), ("at the top", "at the bottom"))

EVENT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "moves_right": (
        "{a} moves to the right",
        "{a} slides from left to right",
        "{a} travels rightwards",
        "{a} is moving right",
        "{a} goes from the left side to the right side",
    ),
    "moves_left": (
        "{a} moves to the left",
        "{a} slides from right to left",
        "{a} travels leftwards",
        "{a} is moving left",
        "{a} goes from the right side to the left side",
    ),
    "moves_up": (
        "{a} moves up",
        "{a} rises from the bottom to the top",
        "{a} travels upwards",
        "{a} is moving up",
        "{a} goes from the bottom up to the top",
    ),
    "moves_down": (
        "{a} moves down",
        "{a} falls from the top to the bottom",
        "{a} travels downwards",
        "{a} is moving down",
        "{a} goes from the top down to the bottom",
    ),
    "appears": (
        "{a} appears",
        "{a} fades in",
        "{a} shows up out of nowhere",
        "{a} is appearing",
        "{a} gradually becomes visible",
    ),
    "disappears": (
        "{a} disappears",
        "{a} fades out",
        "{a} vanishes",
        "{a} is disappearing",
        "{a} gradually becomes invisible",
    ),
    "flashes": (
        "{a} flashes",
        "{a} blinks on and off",
        "{a} keeps flickering",
        "{a} is flashing",
        "{a} turns on and off again and again",
    ),
    "stays_still": (
        "{a} stays still",
        "{a} does not move",
        "{a} rests in place",
        "{a} is standing still",
        "{a} remains motionless",
    ),
}
EVENTS: tuple[str, ...] = tuple(EVENT_TEMPLATES)
# Clips use fewer appearances than still images: with 12 appearances a training batch of 32 holds several
# clips of the same colour and shape, so the contrastive loss can only be lowered by telling events apart.
# (With all 40, appearance alone separates almost every batch, and tuning barely learns time.)
CLIP_COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow")
CLIP_SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
CAPTIONS_PER_CLIP = len(EVENT_TEMPLATES["moves_right"])

# Direction of travel (dx, dy) in frame fractions over the whole clip, for the moving events.
_TRAVEL: dict[str, tuple[float, float]] = {
    "moves_right": (0.5, 0.0),
    "moves_left": (-0.5, 0.0),
    "moves_up": (0.0, -0.5),
    "moves_down": (0.0, 0.5),
}
# Where a clip's object is, named in its captions. A moving object's place is its lane: a row for left-right
# travel, a column for up-down travel. The still image captions that pretrain the backbone use the same words,
# so a zero-shot model can tell places (and appearance) apart, but not events: each evaluation clip shares its
# appearance and often its place with clips of other events.
PLACES_OF_EVENT: dict[str, tuple[str, ...]] = {
    event: ("at the top", "in the center", "at the bottom") if event in ("moves_right", "moves_left")
    else ("on the left", "in the center", "on the right") if event in ("moves_up", "moves_down")
    else tuple(POSITIONS)
    for event in EVENTS
}
_TRAIL_ALPHAS = (0.55, 0.35, 0.18)  # ghost copies behind a moving object, nearest first
_TRAIL_SPACING = 0.07  # distance between ghosts, in frame fractions
_FLASH_PERIOD = 5  # a flashing object is visible 3 frames of every 5: any uniform sampling sees both states


@dataclass(frozen=True)
class Shape:
    """One drawn object: colour name, shape name, centre (x, y) and radius in frame fractions, opacity."""

    colour: str
    shape: str
    x: float
    y: float
    radius: float
    alpha: float = 1.0
    hollow: bool = False  # only the outline is drawn (a disappearing object)
    ring: bool = False  # a white ring around it (an appearing object)


@dataclass(frozen=True)
class ClipSpec:
    """Everything needed to render and caption one clip; rendering it twice gives identical pixels."""

    colour: str
    shape: str
    event: str
    place: str  # a key of POSITIONS, named in the captions: where it sits, or the lane a moving object takes
    x: float  # start centre
    y: float
    radius: float
    n_frames: int
    background: int  # grey level of the plain background
    phase: int  # frame offset of the flashing pattern
    noise_seed: int

    def subject(self, definite: bool) -> str:
        """`a red circle at the top`, `the red circle at the top`."""
        thing = f"the {self.colour} {self.shape}" if definite else with_article(f"{self.colour} {self.shape}")
        return f"{thing} {self.place}"


def with_article(phrase: str) -> str:
    """'a red circle', 'an orange square'."""
    return f"{'an' if phrase[0] in 'aeiou' else 'a'} {phrase}"


# ----------------------------------------------------------------------------------------------- drawing


def _signed_distance(shape: str, dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    """Approximate signed distance (negative inside) to a shape centred at the origin, in frame fractions."""
    if shape == "circle":
        return np.hypot(dx, dy) - radius
    if shape == "square":
        half = radius * 0.85
        return np.maximum(np.abs(dx), np.abs(dy)) - half
    if shape == "diamond":
        return (np.abs(dx) + np.abs(dy) - radius * 1.15) / np.sqrt(2.0)
    if shape == "cross":
        arm = radius * 0.35
        horizontal = np.maximum(np.abs(dx) - radius, np.abs(dy) - arm)
        vertical = np.maximum(np.abs(dx) - arm, np.abs(dy) - radius)
        return np.minimum(horizontal, vertical)
    if shape == "triangle":
        # Upward equilateral triangle: the max over its three edges' half-plane distances.
        base = dy - radius * 0.6
        slope = (np.sqrt(3.0) * np.abs(dx) - dy - radius * 1.2) / 2.0
        return np.maximum(base, slope)
    raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")


def _coverage(signed_distance: np.ndarray, size: int) -> np.ndarray:
    """Anti-aliased coverage in [0, 1]: a one-pixel soft edge, so shapes look alike at every resolution."""
    return np.clip(0.5 - signed_distance * size, 0.0, 1.0)


def draw(shapes: Sequence[Shape], size: int, background: int, noise_seed: int | None = None) -> np.ndarray:
    """Render shapes over a plain grey background as a uint8 [size, size, 3] image."""
    centres = (np.arange(size, dtype=np.float32) + 0.5) / size
    xs, ys = np.meshgrid(centres, centres)
    canvas = np.full((size, size, 3), float(background), dtype=np.float32)
    for item in shapes:
        distance = _signed_distance(item.shape, xs - item.x, ys - item.y, item.radius)
        if item.ring:
            ring_distance = np.abs(np.hypot(xs - item.x, ys - item.y) - item.radius * 1.45) - 0.025
            ring = _coverage(ring_distance, size)[..., None]
            canvas = canvas * (1 - ring) + 255.0 * ring
        if item.hollow:
            distance = np.abs(distance + 0.03) - 0.03  # a band just inside the outline
        cover = (_coverage(distance, size) * item.alpha)[..., None]
        canvas = canvas * (1 - cover) + np.asarray(COLOURS[item.colour], dtype=np.float32) * cover
    if noise_seed is not None:
        # Mild sensor noise, so that codecs and models do not see perfectly flat regions.
        canvas += np.random.default_rng(noise_seed).normal(0.0, 3.0, canvas.shape).astype(np.float32)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------- still images


def render_image_caption_pairs(n: int, seed: int, size: int = 32) -> tuple[np.ndarray, list[str]]:
    """`n` still images (uint8 [n, size, size, 3]) with captions about appearance only, from `seed`.

    One object ("a big red circle on the left") or two ("a red circle on the left and a blue square on the
    right"); never a word about time.
    """
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    captions: list[str] = []
    colour_names, position_names = list(COLOURS), list(POSITIONS)
    for index in range(n):
        background = int(rng.integers(25, 90))
        if rng.random() < 0.6:
            placements = [position_names[rng.integers(len(position_names))]]
        else:
            pair = POSITION_PAIRS[rng.integers(len(POSITION_PAIRS))]
            placements = list(pair) if rng.random() < 0.5 else [pair[1], pair[0]]
        shapes, phrases = [], []
        for position in placements:
            colour = colour_names[rng.integers(len(colour_names))]
            shape = SHAPES[rng.integers(len(SHAPES))]
            size_name = "small" if rng.random() < 0.5 else "big"
            cx, cy = POSITIONS[position]
            jitter = rng.uniform(-0.05, 0.05, size=2)
            shapes.append(Shape(colour, shape, cx + jitter[0], cy + jitter[1], SIZES[size_name]))
            # Size is named only half of the time, so both "a red circle" and "a big red circle" are seen.
            words = f"{size_name} {colour} {shape}" if rng.random() < 0.5 else f"{colour} {shape}"
            phrases.append(f"{with_article(words)} {position}")
        images[index] = draw(shapes, size, background, noise_seed=seed * 1_000_003 + index)
        caption = " and ".join(phrases)
        captions.append(f"a picture of {caption}" if rng.random() < 0.2 else caption)
    return images, captions


# ----------------------------------------------------------------------------------------------- clips


def _sample_clip(rng: np.random.Generator, colour: str, shape: str, event: str, frames: tuple[int, int]) -> ClipSpec:
    radius = float(rng.uniform(0.12, 0.16))
    dx, dy = _TRAVEL.get(event, (0.0, 0.0))
    place = PLACES_OF_EVENT[event][rng.integers(len(PLACES_OF_EVENT[event]))]
    cx, cy = POSITIONS[place]
    jitter = rng.uniform(-0.03, 0.03, size=2)
    # A moving object travels along its lane, starting so that the whole path stays inside the frame; any
    # other object sits at its place.
    x = cx + jitter[0] if dx == 0 else (0.25 if dx > 0 else 0.75)
    y = cy + jitter[1] if dy == 0 else (0.25 if dy > 0 else 0.75)
    return ClipSpec(
        colour=colour,
        shape=shape,
        event=event,
        place=place,
        x=float(x),
        y=float(y),
        radius=radius,
        n_frames=int(rng.integers(frames[0], frames[1] + 1)),
        background=int(rng.integers(25, 90)),
        phase=int(rng.integers(_FLASH_PERIOD)),
        noise_seed=int(rng.integers(2**31)),
    )


def sample_clips(
    n: int, seed: int, grouped: bool = False, frames: tuple[int, int] = (16, 24)
) -> list[ClipSpec]:
    """Sample `n` clip specifications from `seed`, over the clip appearances `CLIP_COLOURS` x `CLIP_SHAPES`.

    `grouped=False` (training): appearance and event independent and uniform. `grouped=True` (evaluation):
    every (appearance, event) pair once before any repeats, so each clip shares its appearance with clips of
    every other event and retrieving the right clip needs the event, not only the appearance. The place is
    uniform among the event's places (`PLACES_OF_EVENT`) either way.
    """
    rng = np.random.default_rng(seed)
    appearances = [(colour, shape) for colour in CLIP_COLOURS for shape in CLIP_SHAPES]
    if not grouped:
        picks = [(appearances[rng.integers(len(appearances))], EVENTS[rng.integers(len(EVENTS))]) for _ in range(n)]
    else:
        grid = [(appearance, event) for appearance in appearances for event in EVENTS]
        picks = [grid[i % len(grid)] for i in range(n)]
        picks = [picks[i] for i in rng.permutation(n)]  # neighbouring ids are no appearance group
    return [_sample_clip(rng, colour, shape, event, frames) for (colour, shape), event in picks]


def _frame_shapes(spec: ClipSpec, t: int) -> list[Shape]:
    """The shapes visible in frame `t` of a clip."""
    progress = t / max(spec.n_frames - 1, 1)
    base = Shape(spec.colour, spec.shape, spec.x, spec.y, spec.radius)
    if spec.event in _TRAVEL:
        dx, dy = _TRAVEL[spec.event]
        norm = float(np.hypot(dx, dy))
        x, y = spec.x + dx * progress, spec.y + dy * progress
        # Ghosts behind the object, drawn first so the object covers them; present in every frame, so the
        # direction is readable from one frame and from the mean of frames.
        ghosts = [
            Shape(spec.colour, spec.shape, x - dx / norm * _TRAIL_SPACING * k, y - dy / norm * _TRAIL_SPACING * k,
                  spec.radius, alpha)
            for k, alpha in reversed(list(enumerate(_TRAIL_ALPHAS, start=1)))
        ]
        return [*ghosts, Shape(spec.colour, spec.shape, x, y, spec.radius)]
    if spec.event == "appears":
        # Empty for the first quarter, then fades in, ringed in white while it does.
        if progress < 0.25:
            return []
        alpha = 0.35 + 0.65 * (progress - 0.25) / 0.75
        return [Shape(spec.colour, spec.shape, spec.x, spec.y, spec.radius, alpha=alpha, ring=True)]
    if spec.event == "disappears":
        # Fades out as a hollow outline, then is gone for the last quarter.
        if progress > 0.75:
            return []
        alpha = 1.0 - 0.65 * progress / 0.75
        return [Shape(spec.colour, spec.shape, spec.x, spec.y, spec.radius, alpha=alpha, hollow=True)]
    if spec.event == "flashes":
        return [base] if (t + spec.phase) % _FLASH_PERIOD < 3 else []
    if spec.event == "stays_still":
        return [base]
    raise ValueError(f"unknown event {spec.event!r}; known: {EVENTS}")


def render_clip(spec: ClipSpec, size: int = 64) -> np.ndarray:
    """Render a clip as uint8 [n_frames, size, size, 3]."""
    return np.stack(
        [draw(_frame_shapes(spec, t), size, spec.background, spec.noise_seed + t) for t in range(spec.n_frames)]
    )


def caption_clip(spec: ClipSpec, rng: np.random.Generator) -> list[str]:
    """One caption from each template of the clip's event (paraphrases), in a random order."""
    captions = [
        template.format(a=spec.subject(definite=rng.random() < 0.3))
        for template in EVENT_TEMPLATES[spec.event]
    ]
    return [captions[i] for i in rng.permutation(len(captions))]


# Rounds of `caption_clip` spent looking for distinct captions. A clip has few (templates x "a"/"the", where
# "the" comes 3 times in 10), so a round often finds nothing new; 16 find all 10 of a clip 98% of the time.
_CAPTION_ROUNDS = 16


def distinct_captions(spec: ClipSpec, rng: np.random.Generator, count: int) -> list[str]:
    """`count` captions of a clip from rounds of `caption_clip`: distinct ones first, repeats only if short."""
    captions: list[str] = []
    for _ in range(_CAPTION_ROUNDS):
        if len(captions) >= count:
            break
        captions += [caption for caption in caption_clip(spec, rng) if caption not in captions]
    while len(captions) < count:
        captions += captions[: count - len(captions)]
    return captions[:count]
