"""The generated world: what its still images and clips look like and how they are captioned.

Real CLIP weights and real videos cannot be fetched offline, so the suite carries a world of its own, built
from principles 2 to 6 of docs/offline-world.md (numbered as there; the page says why each holds, what was
measured, and the principles about files, caching and rooms that other modules build) so that the default
leaderboard runs in the regime of the real benchmarks: a backbone that knows the world's concepts from still
images, and clips that hold what stills cannot show, so that adapting has something to gain.

2. Shared concepts. Stills and clips are made of the same concepts: 8 colours, 5 shapes, 2 sizes, 5 places.
   `render_image_caption_pairs` captions stills by these concepts (one or two objects) and pretrains the
   offline backbone (`tiny_clip.py`), which then knows them the way CLIP knows the real world's: well, not
   perfectly, and unevenly.
3. A shift in look. A clip is footage: its background is graded between two tinted greys and a colour cast
   lies over the whole frame (`footage_look`). Stills have neither. Zero-shot copes partly; adapting can undo
   it.
4. Time. Clips move, appear, disappear, flash or stay still; stills never do. Every event leaves evidence in
   single frames as well as in their order (a mean over frames is blind to order): a moving object drags a
   fading trail, an appearing one is ringed in white, a disappearing one turns hollow, a flashing one is
   absent from some frames. Like web alt-text, a third of the one-object still captions name an event the
   image cannot show, so the text tower reads the words of time without anything tying them to a look.
5. Captions as annotators write them. Each clip has several captions, each naming the subject's colour and
   shape, and the event, place, size and companion only some of the time (`P_EVENT`, `P_PLACE`, `P_SIZE`,
   `P_COMPANION_NAMED`): real captions are underspecified, so not every query can be answered exactly.
6. Scenes and sampling. Most clips hold a second, static object (the companion) in a corner; every split is
   sampled alike, each concept independently and uniformly (`sample_clips`), never grouped against one kind
   of model.

Shapes are drawn from float coordinates (fractions of the frame), so one scene renders at any size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Bump when drawing, sampling or captions change: a version is part of what cached data and weights depend on.
IMAGES_VERSION = 2  # the still images and captions that pretrain the offline backbone
CLIPS_VERSION = 3  # the captioned clips of the generated datasets

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
SIZES: dict[str, float] = {"small": 0.13, "big": 0.21}  # radius as a fraction of the frame side
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
# Captions that name no event: an annotator who describes only what is there (principle 5).
SCENE_TEMPLATES: tuple[str, ...] = (
    "a video of {a}",
    "{a} can be seen",
    "there is {a}",
    "footage of {a}",
    "{a} is shown",
)
CAPTIONS_PER_CLIP = len(EVENT_TEMPLATES["moves_right"])
# Clips show every concept the still images teach (principle 2).
CLIP_COLOURS: tuple[str, ...] = tuple(COLOURS)
CLIP_SHAPES: tuple[str, ...] = SHAPES
# How often a still image's one-object caption names an event that the image cannot show (principle 4).
P_UNSHOWN_EVENT = 1 / 3
# How often an annotator names each part of what a clip shows (principle 5): the event, the place, the size.
P_EVENT, P_PLACE, P_SIZE = 0.8, 0.9, 0.8

# Direction of travel (dx, dy) in frame fractions over the whole clip, for the moving events.
_TRAVEL: dict[str, tuple[float, float]] = {
    "moves_right": (0.5, 0.0),
    "moves_left": (-0.5, 0.0),
    "moves_up": (0.0, -0.5),
    "moves_down": (0.0, 0.5),
}
# Where a clip's object is, named in its captions. A moving object's place is its lane: a row for left-right
# travel, a column for up-down travel. The still image captions that pretrain the backbone use the same words.
PLACES_OF_EVENT: dict[str, tuple[str, ...]] = {
    event: ("at the top", "in the center", "at the bottom") if event in ("moves_right", "moves_left")
    else ("on the left", "in the center", "on the right") if event in ("moves_up", "moves_down")
    else tuple(POSITIONS)
    for event in EVENTS
}
# A second, static object that most clips hold in a corner (principle 6); an annotator names it half the time.
P_COMPANION, P_COMPANION_NAMED = 0.7, 0.5
_CORNERS: tuple[tuple[float, float], ...] = ((0.14, 0.14), (0.86, 0.14), (0.14, 0.86), (0.86, 0.86))
_COMPANION_RADIUS = 0.09
_TRAIL_ALPHAS = (0.55, 0.35, 0.18)  # ghost copies behind a moving object, nearest first
_TRAIL_SPACING = 0.07  # distance between ghosts, in frame fractions
_FLASH_PERIOD = 5  # a flashing object is visible 3 frames of every 5: any uniform sampling sees both states
# The footage look (principle 3): per clip, a background graded from top to bottom between two tinted greys,
# and a colour cast (a gain per channel) over the whole frame. The still images have neither.
# Both sizes were set in the world's early design steps, which were read off a test split; the same runs'
# val split orders them the same way (docs/offline-world.md, "What was measured while the world was designed").
_TINT = 10.0  # largest offset of a background channel from its grey level
_CAST = (0.9, 1.1)  # range of the per-channel gain


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
    size: str  # a key of SIZES, which captions may name
    event: str
    place: str  # a key of POSITIONS, named in the captions: where it sits, or the lane a moving object takes
    x: float  # start centre
    y: float
    radius: float
    n_frames: int
    background: int  # grey level of the background
    phase: int  # frame offset of the flashing pattern
    noise_seed: int
    look_seed: int  # the clip's footage look: background grade and colour cast
    companion: Shape | None = None  # a static object in a corner, which captions may name

    def subject(self, definite: bool, size: bool = False, place: bool = True) -> str:
        """`a red circle at the top`, `the big red circle`."""
        words = f"{self.size} {self.colour} {self.shape}" if size else f"{self.colour} {self.shape}"
        thing = f"the {words}" if definite else with_article(words)
        return f"{thing} {self.place}" if place else thing


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


@dataclass(frozen=True)
class Look:
    """How a frame is shot: the background's colour at the top and at the bottom, and a gain per channel."""

    top: tuple[float, float, float]
    bottom: tuple[float, float, float]
    gains: tuple[float, float, float]


def footage_look(background: int, look_seed: int) -> Look:
    """A clip's look: its grey level tinted differently at the top and at the bottom, and a colour cast."""
    rng = np.random.default_rng(look_seed)
    top, bottom = (tuple(float(background + v) for v in rng.uniform(-_TINT, _TINT, 3)) for _ in range(2))
    return Look(top, bottom, tuple(float(g) for g in rng.uniform(*_CAST, 3)))


def draw(shapes: Sequence[Shape], size: int, background: int, noise_seed: int | None = None,
         look: Look | None = None) -> np.ndarray:
    """Render shapes as a uint8 [size, size, 3] image: over a plain grey background (a still image), or over
    a graded background under a colour cast (`look`, a frame of footage)."""
    centres = (np.arange(size, dtype=np.float32) + 0.5) / size
    xs, ys = np.meshgrid(centres, centres)
    if look is None:
        canvas = np.full((size, size, 3), float(background), dtype=np.float32)
    else:
        top, bottom = np.asarray(look.top, np.float32), np.asarray(look.bottom, np.float32)
        canvas = np.broadcast_to(top + (bottom - top) * ys[..., None], (size, size, 3)).astype(np.float32)
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
    if look is not None:
        canvas = canvas * np.asarray(look.gains, dtype=np.float32)
    if noise_seed is not None:
        # Mild sensor noise, so that codecs and models do not see perfectly flat regions.
        canvas += np.random.default_rng(noise_seed).normal(0.0, 3.0, canvas.shape).astype(np.float32)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------- still images


def render_image_caption_pairs(n: int, seed: int, size: int = 32) -> tuple[np.ndarray, list[str]]:
    """`n` still images (uint8 [n, size, size, 3]) with captions, from `seed`.

    One object ("a big red circle on the left") or two ("a red circle on the left and a blue square on the
    right", or "... next to ..."). Like web alt-text, a caption sometimes says more than its image can show
    (principle 4): a third of the one-object captions carry an event ("a red circle on the left moves up"),
    drawn at random, which a still image cannot show. The text tower reads the words of time; nothing ties
    them to what they look like.
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
        caption = (" and " if rng.random() < 0.5 else " next to ").join(phrases)
        if len(phrases) == 1 and rng.random() < P_UNSHOWN_EVENT:
            event = EVENTS[rng.integers(len(EVENTS))]
            caption = EVENT_TEMPLATES[event][rng.integers(CAPTIONS_PER_CLIP)].format(a=caption)
        captions.append(f"a picture of {caption}" if rng.random() < 0.2 else caption)
    return images, captions


# ----------------------------------------------------------------------------------------------- clips


def _sample_clip(rng: np.random.Generator, frames: tuple[int, int]) -> ClipSpec:
    colour = CLIP_COLOURS[rng.integers(len(CLIP_COLOURS))]
    shape = CLIP_SHAPES[rng.integers(len(CLIP_SHAPES))]
    size = tuple(SIZES)[rng.integers(len(SIZES))]
    event = EVENTS[rng.integers(len(EVENTS))]
    dx, dy = _TRAVEL.get(event, (0.0, 0.0))
    place = PLACES_OF_EVENT[event][rng.integers(len(PLACES_OF_EVENT[event]))]
    cx, cy = POSITIONS[place]
    jitter = rng.uniform(-0.03, 0.03, size=2)
    # A moving object travels along its lane, starting so that the whole path stays inside the frame; any
    # other object sits at its place.
    x = cx + jitter[0] if dx == 0 else (0.25 if dx > 0 else 0.75)
    y = cy + jitter[1] if dy == 0 else (0.25 if dy > 0 else 0.75)
    companion = None
    if rng.random() < P_COMPANION:
        others = [(c, s) for c in CLIP_COLOURS for s in CLIP_SHAPES if (c, s) != (colour, shape)]
        other_colour, other_shape = others[rng.integers(len(others))]
        corner_x, corner_y = _CORNERS[rng.integers(len(_CORNERS))]
        companion = Shape(other_colour, other_shape, corner_x, corner_y, _COMPANION_RADIUS)
    return ClipSpec(
        colour=colour,
        shape=shape,
        size=size,
        event=event,
        place=place,
        x=float(x),
        y=float(y),
        radius=float(SIZES[size] * rng.uniform(0.9, 1.1)),
        n_frames=int(rng.integers(frames[0], frames[1] + 1)),
        background=int(rng.integers(25, 90)),
        phase=int(rng.integers(_FLASH_PERIOD)),
        noise_seed=int(rng.integers(2**31)),
        look_seed=int(rng.integers(2**31)),
        companion=companion,
    )


def sample_clips(n: int, seed: int, frames: tuple[int, int] = (16, 24)) -> list[ClipSpec]:
    """Sample `n` clip specifications from `seed`: every split alike, each clip's subject (colour, shape,
    size), event, place, companion and look drawn independently and uniformly (principle 6)."""
    rng = np.random.default_rng(seed)
    return [_sample_clip(rng, frames) for _ in range(n)]


def _frame_shapes(spec: ClipSpec, t: int) -> list[Shape]:
    """The shapes visible in frame `t` of a clip, the companion (if any) first."""
    scenery = [spec.companion] if spec.companion is not None else []
    return scenery + _subject_shapes(spec, t)


def _subject_shapes(spec: ClipSpec, t: int) -> list[Shape]:
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
    """Render a clip as uint8 [n_frames, size, size, 3], in the clip's footage look."""
    look = footage_look(spec.background, spec.look_seed)
    return np.stack(
        [draw(_frame_shapes(spec, t), size, spec.background, spec.noise_seed + t, look) for t in range(spec.n_frames)]
    )


def caption_clip(spec: ClipSpec, rng: np.random.Generator) -> list[str]:
    """`CAPTIONS_PER_CLIP` captions of a clip, as that many annotators would write them (principle 5): each
    names the subject's colour and shape, and the event, the place, the size and the companion only some of
    the time.

    The event's templates are each used once (paraphrases), in a random order; an annotator who names no event
    writes a scene template instead."""
    captions = []
    for index in rng.permutation(CAPTIONS_PER_CLIP):
        subject = spec.subject(definite=rng.random() < 0.3, size=rng.random() < P_SIZE, place=rng.random() < P_PLACE)
        if rng.random() < P_EVENT:
            caption = EVENT_TEMPLATES[spec.event][index].format(a=subject)
        else:
            caption = SCENE_TEMPLATES[index].format(a=subject)
        if spec.companion is not None and rng.random() < P_COMPANION_NAMED:
            caption += f" next to {with_article(f'{spec.companion.colour} {spec.companion.shape}')}"
        captions.append(caption)
    return captions


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
