"""The generated world in the VATEX, LSMDC and ActivityNet layouts, read back through the real loaders."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import decord
import pytest

from vtrbench.benchmark.cli import main
from vtrbench.datasets.base import AnnotationFormat, normalise_whitespace
from vtrbench.datasets.video import read_frames
from vtrbench.offline import activitynet, lsmdc, vatex, writer
from vtrbench.registry import DATASETS

N_TRAIN, N_VAL, N_TEST, SEED = 5, 3, 4, 3
MODULES = {"vatex": vatex, "lsmdc": lsmdc, "activitynet": activitynet}
GENERATORS: dict[str, Callable[..., Path]] = {
    "vatex": vatex.generate_vatex,
    "lsmdc": lsmdc.generate_lsmdc,
    "activitynet": activitynet.generate_activitynet,
}
# ActivityNet has no validation file, as the real dataset has none that is disjoint from its test
SIZES = {name: {"train": N_TRAIN, "test": N_TEST} | ({} if name == "activitynet" else {"val": N_VAL})
         for name in GENERATORS}
# What the loaders make of them: ActivityNet's val is a 10% hold-out of train (at least one clip)
LOADED = {name: {"train": N_TRAIN, "val": N_VAL, "test": N_TEST} for name in GENERATORS} | {
    "activitynet": {"train": N_TRAIN - 1, "val": 1, "test": N_TEST}}
ANNOTATION_FILES = {
    "vatex": ["vatex_data.json", "train_list.txt", "val_list.txt", "test_list.txt"],
    "lsmdc": ["LSMDC16_annos_training.csv", "LSMDC16_annos_val.csv", "LSMDC16_challenge_1000_publictect.csv"],
    "activitynet": ["train.json", "val_1.json"],
}
CAPTIONS_PER_CLIP = {"vatex": vatex.CAPTIONS_PER_CLIP, "lsmdc": 1, "activitynet": 1}


def generate(format_name: str, root: Path) -> Path:
    return GENERATORS[format_name](root, seed=SEED, sizes=SIZES[format_name], progress=False)


def loader(format_name: str, root: Path) -> AnnotationFormat:
    dataset_class = DATASETS.get(format_name)
    return dataset_class(dataset_class.Config(root=str(root)))


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {name: generate(name, tmp_path_factory.mktemp(name)) for name in GENERATORS}


@pytest.mark.parametrize("format_name", GENERATORS)
def test_the_loader_reads_every_split_and_decodes_every_video(roots: dict[str, Path], format_name: str) -> None:
    dataset = loader(format_name, roots[format_name])
    for split, size in LOADED[format_name].items():
        clips = dataset.load(split).clips
        assert len(clips) == size
        assert all(len(clip.captions) == CAPTIONS_PER_CLIP[format_name] for clip in clips)
        for clip in clips:
            assert clip.path is not None, f"{format_name} {split}: no video for {clip.video_id}"
            sampled = read_frames(clip.path, 4)
            assert sampled.frames.shape == (4, writer.VIDEO_SIZE, writer.VIDEO_SIZE, 3) and sampled.mask.all()
    train_ids, val_ids, test_ids = ({clip.video_id for clip in dataset.load(split).clips}
                                    for split in ("train", "val", "test"))
    assert train_ids.isdisjoint(test_ids) and val_ids.isdisjoint(test_ids) and train_ids.isdisjoint(val_ids)


def test_vatex_has_youtube_clip_ids_and_the_official_caption_json(roots: dict[str, Path]) -> None:
    entries = json.loads((roots["vatex"] / "vatex_data.json").read_text(encoding="utf-8"))
    assert isinstance(entries, list) and len(entries) == N_TRAIN + N_VAL + N_TEST
    for entry in entries:
        assert set(entry) == {"videoID", "enCap", "chCap"}
        assert re.fullmatch(r"[A-Za-z0-9_-]{11}_\d{6}_\d{6}", entry["videoID"])
        assert len(entry["enCap"]) == len(entry["chCap"]) == vatex.CAPTIONS_PER_CLIP
        assert (roots["vatex"] / "videos" / f"{entry['videoID']}.mp4").is_file()
    split_lists = [(roots["vatex"] / f"{split}_list.txt").read_text() for split in ("train", "val", "test")]
    listed = [clip_id for text in split_lists for clip_id in text.split()]
    assert listed == [entry["videoID"] for entry in entries]


def test_lsmdc_lines_have_six_fields_and_clips_sit_in_their_movie_folder(roots: dict[str, Path]) -> None:
    movies_of_split = {}
    for split, name in lsmdc.FILES.items():
        lines = (roots["lsmdc"] / name).read_text(encoding="utf-8").splitlines()
        movies = set()
        for line in lines:
            clip_id, start, end, extracted_start, extracted_end, sentence = line.split("\t")
            movie = clip_id.rsplit("_", 1)[0]
            assert clip_id == f"{movie}_{start}-{end}" and (start, end) == (extracted_start, extracted_end)
            assert re.fullmatch(r"\d{2}\.\d{2}\.\d{2}\.\d{3}", start) and sentence
            assert (roots["lsmdc"] / "videos" / movie / f"{clip_id}.mp4").is_file()
            movies.add(movie)
        movies_of_split[split] = movies
    assert len(movies_of_split["train"] | movies_of_split["val"] | movies_of_split["test"]) == sum(
        len(movies) for movies in movies_of_split.values())
    assert lsmdc.lsmdc_timestamp(3_723_004) == "01.02.03.004"


def test_activitynet_videos_are_events_in_sequence_and_their_paragraph_is_the_query(roots: dict[str, Path]) -> None:
    root = roots["activitynet"]
    dataset = loader("activitynet", root)
    for splits, name in ((("train", "val"), "train.json"), (("test",), "val_1.json")):
        annotations = json.loads((root / name).read_text())
        clips = {clip.video_id: clip for split in splits for clip in dataset.load(split).clips}
        assert sorted(clips) == sorted(annotations)
        for key, video in annotations.items():
            assert key.startswith("v_") and set(video) == {"duration", "timestamps", "sentences"}
            low, high = activitynet.EVENTS_PER_VIDEO
            assert low <= len(video["sentences"]) == len(video["timestamps"]) <= high
            ends = [0.0] + [end for _, end in video["timestamps"]]
            assert [start for start, _ in video["timestamps"]] == ends[:-1] and ends[-1] == video["duration"]
            assert clips[key].captions == [normalise_whitespace(" ".join(video["sentences"]))]
            assert len(decord.VideoReader(str(clips[key].path))) == round(video["duration"] * writer.VIDEO_FPS)


@pytest.mark.parametrize("format_name", GENERATORS)
def test_the_same_seed_gives_the_same_files(roots: dict[str, Path], format_name: str, tmp_path: Path) -> None:
    again = generate(format_name, tmp_path)
    for name in ANNOTATION_FILES[format_name]:
        assert (again / name).read_bytes() == (roots[format_name] / name).read_bytes()
    videos = sorted(path.relative_to(again) for path in (again / "videos").rglob("*.mp4"))
    assert len(videos) == sum(SIZES[format_name].values())
    assert (again / videos[0]).read_bytes() == (roots[format_name] / videos[0]).read_bytes()


@pytest.mark.parametrize("format_name", GENERATORS)
def test_a_complete_dataset_is_not_generated_again(
    roots: dict[str, Path], format_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("regenerated a cached dataset")

    monkeypatch.setattr(writer, "write_videos", fail)  # every format renders through the writer
    assert generate(format_name, roots[format_name]) == roots[format_name]


@pytest.mark.parametrize("constant, value", [("VIDEO_CODEC", "libx264"), ("VIDEO_QSCALE", 5)])
def test_a_dataset_encoded_otherwise_is_generated_again(roots: dict[str, Path], constant: str, value: object,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found in review: the codec and its quality were not in the marker's settings, so videos encoded another
    way were reused; the format's offline name (`DATA_ROOTS.identity`) follows the settings too."""
    root = roots["lsmdc"]
    before = writer.settings_identity("lsmdc", SEED, SIZES["lsmdc"])
    monkeypatch.setattr(writer, constant, value)
    assert not writer.is_complete(root, writer.dataset_settings("lsmdc", SEED, SIZES["lsmdc"]))
    assert writer.settings_identity("lsmdc", SEED, SIZES["lsmdc"]) != before


@pytest.mark.parametrize("format_name", GENERATORS)
def test_data_check_passes_on_the_offline_default(
    format_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # The real offline default takes seconds to generate; the same route with a few clips checks the wiring.
    monkeypatch.setenv("VTRBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(MODULES[format_name], "SIZES", SIZES[format_name])
    assert main(["data", "check", format_name]) == 0
    out = capsys.readouterr().out
    for split, size in LOADED[format_name].items():  # every split's size, val included
        assert f"{split}: {size} clips" in out
    assert f"usable: {N_TEST} of {N_TEST} clips" in out
    assert (tmp_path / "data" / format_name / writer.MARKER_NAME).is_file()
