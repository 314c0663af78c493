"""A generated world of coloured shapes: static image-caption pairs and captioned videos on disk.

Real CLIP weights and real videos cannot be fetched offline, so the suite carries its own small world:
- `render_image_caption_pairs` draws still images captioned by APPEARANCE only (colour, shape, size,
  position). They pretrain the offline backbone (`vtrbench.methods.offline_clip`): an image-text model
  that knows appearance and has never seen time.
- `sample_clips` + `render_clip` draw short clips whose captions are about TIME as well (direction of motion,
  appearing, disappearing, flashing, standing still). The `generate_*` functions write them to disk in the
  real annotation layouts, so the harness reads them with the same loaders as the real datasets.

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

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

# Bump whenever drawing, sampling or captions change: it invalidates cached datasets and pretrained weights.
RENDERER_VERSION = 1

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
    x: float  # start centre
    y: float
    radius: float
    n_frames: int
    background: int  # grey level of the plain background
    phase: int  # frame offset of the flashing pattern
    noise_seed: int

    def subject(self, definite: bool) -> str:
        return f"the {self.colour} {self.shape}" if definite else with_article(f"{self.colour} {self.shape}")


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
    # Start so that the whole path (and the object) stays inside the frame.
    x = float(rng.uniform(0.25, 0.75)) if dx == 0 else (0.25 if dx > 0 else 0.75)
    y = float(rng.uniform(0.25, 0.75)) if dy == 0 else (0.25 if dy > 0 else 0.75)
    return ClipSpec(
        colour=colour,
        shape=shape,
        event=event,
        x=x,
        y=y,
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

    `grouped=False` (training): appearance and event independent and uniform. `grouped=True` (test): every
    (appearance, event) pair once before any repeats, so each clip shares its appearance with one clip of
    every other event and retrieving the right clip needs the event, not only the appearance.
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


# ----------------------------------------------------------------------------------- writing to disk

# A multiple of 32: decord 0.6.0 returns garbled frames (4 channels) for widths that are not, e.g. 48.
VIDEO_SIZE = 64
VIDEO_FPS = 8


# MPEG-4 part 2, not H.264: libx264 in PyAV's ffmpeg gives different bytes for the same frames from run to run,
# which would break "same seed, same dataset"; mpeg4 is deterministic and in every ffmpeg build.
VIDEO_CODEC = "mpeg4"


def write_mp4(path: Path, frames: np.ndarray, fps: int = VIDEO_FPS) -> None:
    """Encode uint8 [T, H, W, 3] frames (H, W even) as an mp4, through a temporary file then a rename."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.tmp{os.getpid()}.mp4")
    with av.open(str(temporary), mode="w") as container:
        stream = container.add_stream(VIDEO_CODEC, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        # Near-lossless quality: the cues are a few pixels wide and the files stay tiny anyway.
        stream.options = {"qscale": "2"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    os.replace(temporary, path)


MARKER_NAME = ".vtrbench_synthetic.json"


def cache_dir() -> Path:
    """Where generated data and pretrained weights are kept: `$VTRBENCH_CACHE`, else `~/.cache/vtrbench`."""
    configured = os.environ.get("VTRBENCH_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "vtrbench"


def offline_dataset(format_name: str, progress: bool = True) -> Path:
    """Root of the offline default dataset in `format_name`'s layout, generated under `cache_dir()` once."""
    generators = {
        "msrvtt": generate_msrvtt,
        "vatex": generate_vatex,
        "lsmdc": generate_lsmdc,
        "activitynet": generate_activitynet,
    }
    if format_name not in generators:
        raise ValueError(f"no offline data for format {format_name!r}; known: {sorted(generators)}")
    return generators[format_name](cache_dir() / "data" / format_name, progress=progress)


def _is_complete(root: Path, settings: dict) -> bool:
    marker = root / MARKER_NAME
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()) == settings
    except (OSError, json.JSONDecodeError):
        return False


def _write_json_atomic(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        json.dump(payload, handle, indent=1)
    os.replace(handle.name, path)


def _write_text_atomic(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        handle.write(text)
    os.replace(handle.name, path)


def _progress(items: Sequence, description: str, enabled: bool) -> Iterator:
    return iter(tqdm(items, desc=description, disable=not enabled or not sys.stderr.isatty(), leave=False))


def _dataset_settings(format_name: str, seed: int, n_train: int, n_test: int) -> dict:
    """What a generated dataset depends on: its marker holds it, and any change regenerates the data."""
    return {"format": format_name, "renderer_version": RENDERER_VERSION, "seed": seed, "n_train": n_train,
            "n_test": n_test, "size": VIDEO_SIZE, "fps": VIDEO_FPS}


def _start(root: Path, settings: dict) -> bool:
    """True when `root` already holds this dataset; otherwise drop a stale marker and prepare to write."""
    if _is_complete(root, settings):
        return True
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER_NAME).unlink(missing_ok=True)  # the marker is written last, only once all files exist
    return False


def _fresh_video_dir(root: Path) -> Path:
    """`root/videos`, emptied: leftovers of other settings would otherwise linger beside the new clips."""
    video_dir = root / "videos"
    if video_dir.exists():
        shutil.rmtree(video_dir)
    return video_dir


def _derived_seed(seed: int, purpose: str) -> int:
    """An independent seed per dataset and use (`"vatex/train"`), so formats and splits never share clips."""
    return int(np.random.SeedSequence([seed, *purpose.encode()]).generate_state(1)[0])


# Rounds of `caption_clip` spent looking for distinct captions. A clip has few (templates x "a"/"the", where
# "the" comes 3 times in 10), so a round often finds nothing new; 16 find all 10 of a clip 98% of the time.
_CAPTION_ROUNDS = 16


def _captions(spec: ClipSpec, rng: np.random.Generator, count: int) -> list[str]:
    """`count` captions of a clip from rounds of `caption_clip`: distinct ones first, repeats only if short."""
    captions: list[str] = []
    for _ in range(_CAPTION_ROUNDS):
        if len(captions) >= count:
            break
        captions += [caption for caption in caption_clip(spec, rng) if caption not in captions]
    while len(captions) < count:
        captions += captions[: count - len(captions)]
    return captions[:count]


# YouTube ids are 11 characters of the URL-safe base64 alphabet.
_YOUTUBE_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))


def _youtube_ids(rng: np.random.Generator, n: int) -> list[str]:
    """`n` distinct made-up YouTube ids."""
    ids: dict[str, None] = {}  # a dict keeps the drawing order, so the ids are the same on every platform
    while len(ids) < n:
        ids["".join(rng.choice(_YOUTUBE_ALPHABET, 11))] = None
    return list(ids)


# ------------------------------------------------------------------------------------------- MSR-VTT


def generate_msrvtt(
    root: Path, seed: int = 0, n_train: int = 640, n_test: int = 96, progress: bool = True
) -> Path:
    """Write a synthetic MSR-VTT to `root` in the real layout and return `root`.

    `videos/video<i>.mp4`, `MSRVTT_data.json` (all captions, 5 paraphrases per clip), `MSRVTT_train.9k.csv`
    (train ids) and `MSRVTT_JSFUSION_test.csv` (one caption per test clip). Train clips are `video0` ..,
    test clips follow them. A second call with the same settings returns at once.
    """
    root = Path(root)
    settings = _dataset_settings("msrvtt", seed, n_train, n_test)
    if _start(root, settings):
        return root
    train_specs = sample_clips(n_train, seed=seed * 2 + 1)
    test_specs = sample_clips(n_test, seed=seed * 2 + 2, grouped=True)
    caption_rng = np.random.default_rng([seed, 3])
    splits = [("train", spec) for spec in train_specs] + [("test", spec) for spec in test_specs]

    videos, sentences, test_rows = [], [], []
    video_dir = _fresh_video_dir(root)
    for index, (split, spec) in enumerate(_progress(splits, "synthetic MSR-VTT", progress)):
        video_id = f"video{index}"
        write_mp4(video_dir / f"{video_id}.mp4", render_clip(spec, VIDEO_SIZE))
        videos.append({
            "video_id": video_id,
            "category": EVENTS.index(spec.event),
            "url": f"synthetic://vtrbench/{video_id}",
            "start time": 0.0,
            "end time": round(spec.n_frames / VIDEO_FPS, 3),
            "split": split,
            "id": index,
        })
        captions = caption_clip(spec, caption_rng)
        for caption in captions:
            sentences.append({"caption": caption, "video_id": video_id, "sen_id": len(sentences)})
        if split == "test":
            test_rows.append(f"ret{len(test_rows)},msr{index},{video_id},{captions[0]}")

    info = {
        "contributor": "vtrbench synthetic world",
        "data_created": "generated",
        "version": f"renderer {RENDERER_VERSION}",
        "year": 2016,
        "description": "coloured shapes that move, appear, disappear, flash or stay still",
    }
    _write_json_atomic(root / "MSRVTT_data.json", {"info": info, "videos": videos, "sentences": sentences})
    train_ids = [video["video_id"] for video in videos if video["split"] == "train"]
    _write_text_atomic(root / "MSRVTT_train.9k.csv", "video_id\n" + "".join(f"{i}\n" for i in train_ids))
    test_csv = "key,vid_key,video_id,sentence\n" + "".join(f"{row}\n" for row in test_rows)
    _write_text_atomic(root / "MSRVTT_JSFUSION_test.csv", test_csv)
    _write_json_atomic(root / MARKER_NAME, settings)
    return root


# --------------------------------------------------------------------------------------------- VATEX

VATEX_CAPTIONS_PER_CLIP = 10
# The official files hold 10 Chinese captions beside the English ones; the harness reads only the English, so
# the Chinese slots carry "synthetic video, no Chinese caption".
_VATEX_CHINESE_PLACEHOLDER = "合成视频，没有中文描述"


def generate_vatex(
    root: Path, seed: int = 0, n_train: int = 300, n_test: int = 60, progress: bool = True
) -> Path:
    """Write a synthetic VATEX to `root` in the real layout and return `root`.

    Clip ids `<11-char YouTube id>_<start>_<end>` (whole seconds, 6 digits each), `videos/<clip id>.mp4`,
    `train_list.txt` / `test_list.txt` (one id per line) and `vatex_data.json` in the official shape: a list of
    `{"videoID", "enCap": [10 captions], "chCap": [10 strings]}`. The 10 English captions are rounds of the
    clip's paraphrases. A second call with the same settings returns at once.
    """
    root = Path(root)
    settings = _dataset_settings("vatex", seed, n_train, n_test)
    if _start(root, settings):
        return root
    train_specs = sample_clips(n_train, seed=_derived_seed(seed, "vatex/train"))
    test_specs = sample_clips(n_test, seed=_derived_seed(seed, "vatex/test"), grouped=True)
    splits = [("train", spec) for spec in train_specs] + [("test", spec) for spec in test_specs]
    id_rng = np.random.default_rng(_derived_seed(seed, "vatex/ids"))
    youtube_ids = _youtube_ids(id_rng, len(splits))
    caption_rng = np.random.default_rng(_derived_seed(seed, "vatex/captions"))

    entries: list[dict] = []
    ids_of: dict[str, list[str]] = {"train": [], "test": []}
    video_dir = _fresh_video_dir(root)
    for (split, spec), youtube_id in zip(_progress(splits, "synthetic VATEX", progress), youtube_ids, strict=True):
        start = int(id_rng.integers(0, 600))
        end = start + int(np.ceil(spec.n_frames / VIDEO_FPS))
        clip_id = f"{youtube_id}_{start:06d}_{end:06d}"
        write_mp4(video_dir / f"{clip_id}.mp4", render_clip(spec, VIDEO_SIZE))
        entries.append({
            "videoID": clip_id,
            "enCap": _captions(spec, caption_rng, VATEX_CAPTIONS_PER_CLIP),
            "chCap": [_VATEX_CHINESE_PLACEHOLDER] * VATEX_CAPTIONS_PER_CLIP,
        })
        ids_of[split].append(clip_id)

    _write_json_atomic(root / "vatex_data.json", entries)
    for split, ids in ids_of.items():
        _write_text_atomic(root / f"{split}_list.txt", "".join(f"{clip_id}\n" for clip_id in ids))
    _write_json_atomic(root / MARKER_NAME, settings)
    return root


# --------------------------------------------------------------------------------------------- LSMDC

LSMDC_TRAIN_MOVIES = ("0001_SYNTHETIC_MOVIE_ONE", "0002_SYNTHETIC_MOVIE_TWO", "0003_SYNTHETIC_MOVIE_THREE")
# As in the real LSMDC, the test clips come from movies that training never shows.
LSMDC_TEST_MOVIES = ("3001_SYNTHETIC_TEST_MOVIE_ONE", "3002_SYNTHETIC_TEST_MOVIE_TWO")


def lsmdc_timestamp(milliseconds: int) -> str:
    """LSMDC's `hh.mm.ss.mmm`."""
    seconds, millis = divmod(milliseconds, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}.{minutes:02d}.{seconds:02d}.{millis:03d}"


def generate_lsmdc(
    root: Path, seed: int = 0, n_train: int = 600, n_test: int = 100, progress: bool = True
) -> Path:
    """Write a synthetic LSMDC to `root` in the real layout and return `root`.

    `LSMDC16_annos_training.csv` (train) and `LSMDC16_challenge_1000_publictect.csv` (test): tab-separated, no
    header, `<clip id>\\t<start>\\t<end>\\t<start>\\t<end>\\t<sentence>` with `hh.mm.ss.mmm` times (aligned and
    extracted times are the same) and ONE sentence per clip. Clip ids are `<movie>_<start>-<end>`, each movie a
    run of consecutive clips with gaps between them; videos are `videos/<movie>/<clip id>.mp4`. A second call
    with the same settings returns at once.
    """
    root = Path(root)
    settings = _dataset_settings("lsmdc", seed, n_train, n_test)
    if _start(root, settings):
        return root
    files = {"train": "LSMDC16_annos_training.csv", "test": "LSMDC16_challenge_1000_publictect.csv"}
    specs_of = {
        "train": (LSMDC_TRAIN_MOVIES, sample_clips(n_train, seed=_derived_seed(seed, "lsmdc/train"))),
        "test": (LSMDC_TEST_MOVIES, sample_clips(n_test, seed=_derived_seed(seed, "lsmdc/test"), grouped=True)),
    }
    time_rng = np.random.default_rng(_derived_seed(seed, "lsmdc/times"))
    # (split, movie, clip id, start, end in ms, spec): each split's clips in contiguous blocks per movie.
    planned: list[tuple[str, str, str, int, int, ClipSpec]] = []
    for split, (movies, specs) in specs_of.items():
        clock = {movie: int(time_rng.integers(60_000, 600_000)) for movie in movies}
        for index, spec in enumerate(specs):
            movie = movies[index * len(movies) // len(specs)]
            start = clock[movie] + int(time_rng.integers(500, 8_000))
            end = start + round(spec.n_frames * 1000 / VIDEO_FPS)
            clock[movie] = end
            clip_id = f"{movie}_{lsmdc_timestamp(start)}-{lsmdc_timestamp(end)}"
            planned.append((split, movie, clip_id, start, end, spec))

    caption_rng = np.random.default_rng(_derived_seed(seed, "lsmdc/captions"))
    lines: dict[str, list[str]] = {"train": [], "test": []}
    video_dir = _fresh_video_dir(root)
    for split, movie, clip_id, start, end, spec in _progress(planned, "synthetic LSMDC", progress):
        write_mp4(video_dir / movie / f"{clip_id}.mp4", render_clip(spec, VIDEO_SIZE))
        times = f"{lsmdc_timestamp(start)}\t{lsmdc_timestamp(end)}"
        lines[split].append(f"{clip_id}\t{times}\t{times}\t{_captions(spec, caption_rng, 1)[0]}\n")

    for split, name in files.items():
        _write_text_atomic(root / name, "".join(lines[split]))
    _write_json_atomic(root / MARKER_NAME, settings)
    return root


# --------------------------------------------------------------------------------------- ActivityNet

ACTIVITYNET_EVENTS = (2, 3)  # fewest and most events in one video
# Events are shorter than a stand-alone clip so that a video stays at most 6 s (48 frames) and decodes fast;
# the 16 frames the harness samples from a video still give every event at least 4.
ACTIVITYNET_EVENT_FRAMES = (12, 16)


def generate_activitynet(
    root: Path, seed: int = 0, n_train: int = 300, n_test: int = 60, progress: bool = True
) -> Path:
    """Write a synthetic ActivityNet Captions to `root` in the real layout and return `root`.

    `train.json` and `val_1.json` (the retrieval test), each `{"v_<id>": {"duration", "timestamps",
    "sentences"}}`, and `videos/<id>.mp4` (no `v_` prefix, as CLIP4Clip-style loaders name the files). A video
    is one object in one scene doing 2-3 things in turn: events of the clip sampler played one after another,
    the later ones taking the first one's appearance and background. One sentence per event with its
    `[start, end]` in seconds; as in the real files, sentences after the first start with a space. A second
    call with the same settings returns at once.
    """
    root = Path(root)
    settings = {
        **_dataset_settings("activitynet", seed, n_train, n_test),
        "events": list(ACTIVITYNET_EVENTS),
        "event_frames": list(ACTIVITYNET_EVENT_FRAMES),
    }
    if _start(root, settings):
        return root
    id_rng = np.random.default_rng(_derived_seed(seed, "activitynet/ids"))
    youtube_ids = iter(_youtube_ids(id_rng, n_train + n_test))
    # (split, YouTube id, events): the k-th events of a split's videos are the k-th of its own sampler run, so
    # the test's first events keep the grouped sampler's balance of appearance and event.
    planned: list[tuple[str, str, list[ClipSpec]]] = []
    for split, n, grouped in (("train", n_train, False), ("test", n_test, True)):
        by_position = [
            sample_clips(n, seed=_derived_seed(seed, f"activitynet/{split}/{k}"), grouped=grouped,
                         frames=ACTIVITYNET_EVENT_FRAMES)
            for k in range(ACTIVITYNET_EVENTS[1])
        ]
        for index in range(n):
            first = by_position[0][index]
            n_events = int(id_rng.integers(ACTIVITYNET_EVENTS[0], ACTIVITYNET_EVENTS[1] + 1))
            later = [
                replace(by_position[k][index], colour=first.colour, shape=first.shape, radius=first.radius,
                        background=first.background)
                for k in range(1, n_events)
            ]
            planned.append((split, next(youtube_ids), [first, *later]))

    caption_rng = np.random.default_rng(_derived_seed(seed, "activitynet/captions"))
    annotations: dict[str, dict[str, dict]] = {"train": {}, "test": {}}
    video_dir = _fresh_video_dir(root)
    for split, youtube_id, events in _progress(planned, "synthetic ActivityNet", progress):
        write_mp4(video_dir / f"{youtube_id}.mp4", np.concatenate([render_clip(spec, VIDEO_SIZE) for spec in events]))
        timestamps, sentences, first_frame = [], [], 0
        for spec in events:
            last_frame = first_frame + spec.n_frames
            timestamps.append([round(first_frame / VIDEO_FPS, 3), round(last_frame / VIDEO_FPS, 3)])
            sentence = _captions(spec, caption_rng, 1)[0]
            sentences.append(f" {sentence}" if sentences else sentence)
            first_frame = last_frame
        annotations[split][f"v_{youtube_id}"] = {
            "duration": round(first_frame / VIDEO_FPS, 3),
            "timestamps": timestamps,
            "sentences": sentences,
        }

    _write_json_atomic(root / "train.json", annotations["train"])
    _write_json_atomic(root / "val_1.json", annotations["test"])
    _write_json_atomic(root / MARKER_NAME, settings)
    return root
