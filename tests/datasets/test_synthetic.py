"""The generated world: deterministic scenes, and an MSR-VTT in the real layout that decodes and caches."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import decord
import numpy as np
import pandas as pd
import pytest

from vtrbench.datasets import synthetic

N_TRAIN, N_TEST = 6, 8


@pytest.fixture(scope="module")
def msrvtt_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.generate_msrvtt(tmp_path_factory.mktemp("msrvtt"), seed=3, n_train=N_TRAIN, n_test=N_TEST,
                                     progress=False)


def test_image_caption_pairs_are_deterministic_and_static() -> None:
    images, captions = synthetic.render_image_caption_pairs(16, seed=7, size=32)
    again_images, again_captions = synthetic.render_image_caption_pairs(16, seed=7, size=32)
    assert images.shape == (16, 32, 32, 3) and images.dtype == np.uint8
    assert np.array_equal(images, again_images) and captions == again_captions
    other_images, _ = synthetic.render_image_caption_pairs(16, seed=8, size=32)
    assert not np.array_equal(images, other_images)
    event_words = {"moves", "appears", "disappears", "flashes", "still", "fades"}
    assert not any(event_words & set(caption.split()) for caption in captions)


def test_scenes_render_at_any_resolution() -> None:
    images, _ = synthetic.render_image_caption_pairs(2, seed=0, size=48)
    assert images.shape == (2, 48, 48, 3)


def test_clip_events_leave_evidence_in_single_frames() -> None:
    # A clip and its time-reversal must differ frame by frame (as sets), or a mean over frames could not tell
    # "moves right" from "moves left".
    [right] = [spec for spec in synthetic.sample_clips(64, seed=0) if spec.event == "moves_right"][:1]
    mirrored = dataclasses.replace(right, event="moves_left", x=1 - right.x)
    right_frames, left_frames = synthetic.render_clip(right), synthetic.render_clip(mirrored)
    assert not np.array_equal(np.sort(right_frames, axis=0), np.sort(left_frames[::-1], axis=0))


def test_test_clips_share_appearance_and_differ_in_event() -> None:
    n_appearances = len(synthetic.CLIP_COLOURS) * len(synthetic.CLIP_SHAPES)
    specs = synthetic.sample_clips(n_appearances * len(synthetic.EVENTS), seed=1, grouped=True)
    by_appearance: dict[tuple[str, str], list[str]] = {}
    for spec in specs:
        by_appearance.setdefault((spec.colour, spec.shape), []).append(spec.event)
    assert len(by_appearance) == n_appearances
    assert all(sorted(events) == sorted(synthetic.EVENTS) for events in by_appearance.values())


def test_msrvtt_annotation_files_have_the_real_layout(msrvtt_root: Path) -> None:
    data = json.loads((msrvtt_root / "MSRVTT_data.json").read_text())
    assert set(data) == {"info", "videos", "sentences"}
    assert set(data["videos"][0]) == {"video_id", "category", "url", "start time", "end time", "split", "id"}
    assert set(data["sentences"][0]) == {"caption", "video_id", "sen_id"}
    assert len(data["videos"]) == N_TRAIN + N_TEST
    assert len(data["sentences"]) == (N_TRAIN + N_TEST) * synthetic.CAPTIONS_PER_CLIP

    train = pd.read_csv(msrvtt_root / "MSRVTT_train.9k.csv")
    assert list(train.columns) == ["video_id"]
    assert train["video_id"].tolist() == [f"video{i}" for i in range(N_TRAIN)]

    test = pd.read_csv(msrvtt_root / "MSRVTT_JSFUSION_test.csv")
    assert list(test.columns) == ["key", "vid_key", "video_id", "sentence"]
    assert test["key"].tolist() == [f"ret{i}" for i in range(N_TEST)]
    assert test["video_id"].tolist() == [f"video{i}" for i in range(N_TRAIN, N_TRAIN + N_TEST)]
    assert test["vid_key"].tolist() == [f"msr{i}" for i in range(N_TRAIN, N_TRAIN + N_TEST)]
    captions_of = {}
    for sentence in data["sentences"]:
        captions_of.setdefault(sentence["video_id"], []).append(sentence["caption"])
    assert all(row.sentence in captions_of[row.video_id] for row in test.itertuples())


def test_msrvtt_videos_decode_with_decord(msrvtt_root: Path) -> None:
    data = json.loads((msrvtt_root / "MSRVTT_data.json").read_text())
    for video in data["videos"]:
        reader = decord.VideoReader(str(msrvtt_root / "videos" / f"{video['video_id']}.mp4"))
        expected_frames = round(video["end time"] * synthetic.VIDEO_FPS)
        assert len(reader) == expected_frames
        assert 16 <= expected_frames <= 24
        assert reader[0].shape == (synthetic.VIDEO_SIZE, synthetic.VIDEO_SIZE, 3)


def test_msrvtt_is_deterministic(msrvtt_root: Path, tmp_path: Path) -> None:
    again = synthetic.generate_msrvtt(tmp_path, seed=3, n_train=N_TRAIN, n_test=N_TEST, progress=False)
    for name in ("MSRVTT_data.json", "MSRVTT_train.9k.csv", "MSRVTT_JSFUSION_test.csv"):
        assert (again / name).read_bytes() == (msrvtt_root / name).read_bytes()
    first = decord.VideoReader(str(msrvtt_root / "videos" / "video0.mp4")).get_batch([0, 5]).asnumpy()
    second = decord.VideoReader(str(again / "videos" / "video0.mp4")).get_batch([0, 5]).asnumpy()
    assert np.array_equal(first, second)


def test_a_complete_dataset_is_not_generated_again(msrvtt_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("regenerated a cached dataset")

    monkeypatch.setattr(synthetic, "write_mp4", fail)
    assert synthetic.generate_msrvtt(msrvtt_root, seed=3, n_train=N_TRAIN, n_test=N_TEST, progress=False) == msrvtt_root


def test_other_settings_regenerate(tmp_path: Path) -> None:
    synthetic.generate_msrvtt(tmp_path, seed=0, n_train=2, n_test=4, progress=False)
    synthetic.generate_msrvtt(tmp_path, seed=0, n_train=3, n_test=4, progress=False)
    assert len(list((tmp_path / "videos").glob("*.mp4"))) == 7
    marker = json.loads((tmp_path / synthetic.MARKER_NAME).read_text())
    assert marker["n_train"] == 3
