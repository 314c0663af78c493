"""The generated world: deterministic scenes, and an MSR-VTT in the real layout that decodes and caches."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import decord
import numpy as np
import pandas as pd
import pytest

from vtrbench.offline import world, writer
from vtrbench.offline.msrvtt import generate_msrvtt

N_TRAIN, N_VAL, N_TEST = 6, 3, 8
SIZES = {"train": N_TRAIN, "val": N_VAL, "test": N_TEST}


@pytest.fixture(scope="module")
def msrvtt_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_msrvtt(tmp_path_factory.mktemp("msrvtt"), seed=3, sizes=SIZES, progress=False)


def test_image_caption_pairs_are_deterministic() -> None:
    images, captions = world.render_image_caption_pairs(16, seed=7, size=32)
    again_images, again_captions = world.render_image_caption_pairs(16, seed=7, size=32)
    assert images.shape == (16, 32, 32, 3) and images.dtype == np.uint8
    assert np.array_equal(images, again_images) and captions == again_captions
    other_images, _ = world.render_image_caption_pairs(16, seed=8, size=32)
    assert not np.array_equal(images, other_images)


def test_scenes_render_at_any_resolution() -> None:
    images, _ = world.render_image_caption_pairs(2, seed=0, size=48)
    assert images.shape == (2, 48, 48, 3)


def test_clip_events_leave_evidence_in_single_frames() -> None:
    # A clip and its time-reversal must differ frame by frame (as sets), or a mean over frames could not tell
    # "moves right" from "moves left".
    [right] = [spec for spec in world.sample_clips(64, seed=0) if spec.event == "moves_right"][:1]
    mirrored = dataclasses.replace(right, event="moves_left", x=1 - right.x)
    right_frames, left_frames = world.render_clip(right), world.render_clip(mirrored)
    assert not np.array_equal(np.sort(right_frames, axis=0), np.sort(left_frames[::-1], axis=0))


def test_every_split_is_sampled_alike_over_every_concept() -> None:
    # Principle 5: no split is grouped against appearance; every colour, shape, size and event shows up.
    specs = world.sample_clips(2000, seed=1)
    assert {s.colour for s in specs} == set(world.COLOURS) and {s.shape for s in specs} == set(world.SHAPES)
    assert {s.size for s in specs} == set(world.SIZES) and {s.event for s in specs} == set(world.EVENTS)
    share = np.mean([s.companion is not None for s in specs])
    assert abs(share - world.P_COMPANION) < 0.05
    assert all(s.companion is None or (s.companion.colour, s.companion.shape) != (s.colour, s.shape) for s in specs)


def test_footage_looks_unlike_the_still_images() -> None:
    # Principle 2: the same objects over a graded, tinted background under a colour cast.
    spec = dataclasses.replace(world.sample_clips(1, seed=3)[0], event="stays_still", companion=None)
    frame = world.render_clip(spec, 32)[0].astype(float)
    shapes = world._frame_shapes(spec, 0)
    still = world.draw(shapes, 32, spec.background, spec.noise_seed).astype(float)
    assert np.abs(frame - still).mean() > 2  # more than the noise
    top, bottom = frame[:3].mean(axis=(0, 1)), frame[-3:].mean(axis=(0, 1))
    assert np.abs(top - bottom).max() > 1 or np.abs(frame[:3] - still[:3]).mean() > 2


def test_captions_name_the_subject_and_only_sometimes_the_rest() -> None:
    # Principle 4: every caption names the subject's colour and shape; event, place, size and companion
    # only some of the time, at the rates the module states.
    rng = np.random.default_rng(0)
    specs = world.sample_clips(400, seed=2)
    captions = [(spec, caption) for spec in specs for caption in world.caption_clip(spec, rng)]
    assert all(f"{spec.colour} {spec.shape}" in caption for spec, caption in captions)
    scene = [c for _, c in captions if any(t.format(a="").strip() in c for t in world.SCENE_TEMPLATES)]
    assert abs(len(scene) / len(captions) - (1 - world.P_EVENT)) < 0.05
    placed = np.mean([spec.place in caption.split(" next to ")[0] for spec, caption in captions])
    assert abs(placed - world.P_PLACE) < 0.05
    with_companion = [(s, c) for s, c in captions if s.companion is not None]
    named = np.mean([" next to " in c for _, c in with_companion])
    assert abs(named - world.P_COMPANION_NAMED) < 0.05


def test_still_captions_sometimes_name_an_event_the_image_cannot_show() -> None:
    # Principle 3: the text tower reads the words of time; nothing ties them to what they look like.
    _, captions = world.render_image_caption_pairs(600, seed=4)
    one_object = [c for c in captions if " and " not in c and " next to " not in c]
    with_event = [c for c in one_object if any(t.format(a="").strip() in c
                                               for templates in world.EVENT_TEMPLATES.values() for t in templates)]
    assert abs(len(with_event) / len(one_object) - world.P_UNSHOWN_EVENT) < 0.07


def test_clip_objects_follow_their_place() -> None:
    for spec in world.sample_clips(80, seed=2):
        assert spec.place in world.PLACES_OF_EVENT[spec.event]
        place_x, place_y = world.POSITIONS[spec.place]
        path = [world._frame_shapes(spec, t)[-1] for t in range(spec.n_frames) if world._subject_shapes(spec, t)]
        path_x, path_y = [s.x for s in path], [s.y for s in path]
        if spec.event in ("moves_right", "moves_left"):  # a lane: the row stays, the column crosses the frame
            assert max(abs(y - place_y) for y in path_y) < 0.05 and max(path_x) - min(path_x) > 0.45
        elif spec.event in ("moves_up", "moves_down"):
            assert max(abs(x - place_x) for x in path_x) < 0.05 and max(path_y) - min(path_y) > 0.45
        else:
            assert max(abs(x - place_x) for x in path_x) < 0.05 and max(abs(y - place_y) for y in path_y) < 0.05


def test_msrvtt_annotation_files_have_the_real_layout(msrvtt_root: Path) -> None:
    data = json.loads((msrvtt_root / "MSRVTT_data.json").read_text())
    assert set(data) == {"info", "videos", "sentences"}
    assert set(data["videos"][0]) == {"video_id", "category", "url", "start time", "end time", "split", "id"}
    assert set(data["sentences"][0]) == {"caption", "video_id", "sen_id"}
    total = N_TRAIN + N_VAL + N_TEST
    assert len(data["videos"]) == total
    assert len(data["sentences"]) == total * world.CAPTIONS_PER_CLIP
    splits = [video["split"] for video in data["videos"]]
    assert splits == ["train"] * N_TRAIN + ["validate"] * N_VAL + ["test"] * N_TEST

    # As in the real files, the 9k training list holds the official validation videos, and the val file lists them.
    train = pd.read_csv(msrvtt_root / "MSRVTT_train.9k.csv")
    assert list(train.columns) == ["video_id"]
    assert train["video_id"].tolist() == [f"video{i}" for i in range(N_TRAIN + N_VAL)]
    val = pd.read_csv(msrvtt_root / "MSRVTT_val.full.csv")
    assert val["video_id"].tolist() == [f"video{i}" for i in range(N_TRAIN, N_TRAIN + N_VAL)]

    test = pd.read_csv(msrvtt_root / "MSRVTT_JSFUSION_test.csv")
    assert list(test.columns) == ["key", "vid_key", "video_id", "sentence"]
    assert test["key"].tolist() == [f"ret{i}" for i in range(N_TEST)]
    assert test["video_id"].tolist() == [f"video{i}" for i in range(N_TRAIN + N_VAL, total)]
    assert test["vid_key"].tolist() == [f"msr{i}" for i in range(N_TRAIN + N_VAL, total)]
    captions_of = {}
    for sentence in data["sentences"]:
        captions_of.setdefault(sentence["video_id"], []).append(sentence["caption"])
    assert all(row.sentence in captions_of[row.video_id] for row in test.itertuples())


def test_msrvtt_videos_decode_with_decord(msrvtt_root: Path) -> None:
    data = json.loads((msrvtt_root / "MSRVTT_data.json").read_text())
    for video in data["videos"]:
        reader = decord.VideoReader(str(msrvtt_root / "videos" / f"{video['video_id']}.mp4"))
        expected_frames = round(video["end time"] * writer.VIDEO_FPS)
        assert len(reader) == expected_frames
        assert 16 <= expected_frames <= 24
        assert reader[0].shape == (writer.VIDEO_SIZE, writer.VIDEO_SIZE, 3)


def test_msrvtt_is_the_same_whatever_the_number_of_processes(
    msrvtt_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer.os, "cpu_count", lambda: 1)  # the fixture was written by one process per core
    again = generate_msrvtt(tmp_path, seed=3, sizes=SIZES, progress=False)
    for name in ("MSRVTT_data.json", "MSRVTT_train.9k.csv", "MSRVTT_val.full.csv", "MSRVTT_JSFUSION_test.csv"):
        assert (again / name).read_bytes() == (msrvtt_root / name).read_bytes()
    videos = sorted(path.name for path in (msrvtt_root / "videos").iterdir())
    assert videos == sorted(path.name for path in (again / "videos").iterdir())
    assert all((again / "videos" / name).read_bytes() == (msrvtt_root / "videos" / name).read_bytes()
               for name in videos)


def test_a_complete_dataset_is_not_generated_again(msrvtt_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("regenerated a cached dataset")

    monkeypatch.setattr(writer, "write_videos", fail)  # every format renders through the writer
    assert generate_msrvtt(msrvtt_root, seed=3, sizes=SIZES, progress=False) == msrvtt_root


def test_other_settings_regenerate(tmp_path: Path) -> None:
    generate_msrvtt(tmp_path, seed=0, sizes={"train": 2, "val": 1, "test": 4}, progress=False)
    generate_msrvtt(tmp_path, seed=0, sizes={"train": 3, "val": 1, "test": 4}, progress=False)
    assert len(list((tmp_path / "videos").glob("*.mp4"))) == 8
    marker = json.loads((tmp_path / writer.MARKER_NAME).read_text())
    assert marker["sizes"]["train"] == 3


SMALL = {"train": 2, "val": 1, "test": 2}


def test_a_dataset_with_a_missing_file_is_regenerated(tmp_path: Path) -> None:
    root = generate_msrvtt(tmp_path / "msrvtt", seed=0, sizes=SMALL, progress=False)
    marker = json.loads((root / writer.MARKER_NAME).read_text())
    assert "videos/video4.mp4" in marker["files"] and "MSRVTT_data.json" in marker["files"]
    (root / "videos" / "video4.mp4").unlink()  # e.g. removed by another process's half-done generation
    assert not writer.is_complete(root, {k: v for k, v in marker.items() if k != "files"})
    generate_msrvtt(root, seed=0, sizes=SMALL, progress=False)
    assert (root / "videos" / "video4.mp4").is_file()


@pytest.mark.parametrize("damage", ["truncate", "empty", "edit_annotation", "marker_not_utf8"])
def test_a_dataset_cut_or_edited_after_it_was_marked_is_regenerated(tmp_path: Path, damage: str) -> None:
    # found in review: a truncated video was skipped as unreadable, and a test csv cut by hand read as a smaller
    # test split, without regenerating; a marker that was not UTF-8 failed every command
    root = generate_msrvtt(tmp_path / "msrvtt", seed=0, sizes=SMALL, progress=False)
    marker_path = root / writer.MARKER_NAME
    marker = json.loads(marker_path.read_text())
    settings = {k: v for k, v in marker.items() if k != "files"}
    video, test_csv = root / "videos" / "video4.mp4", root / "MSRVTT_JSFUSION_test.csv"
    whole = {path: path.read_bytes() for path in (video, test_csv)}
    if damage == "truncate":
        video.write_bytes(whole[video][:100])
    elif damage == "empty":
        video.write_bytes(b"")
    elif damage == "edit_annotation":
        test_csv.write_text("\n".join(test_csv.read_text().splitlines()[:-1]) + "\n")
    else:
        marker_path.write_bytes(marker_path.read_bytes()[:40] + b"\xff" + marker_path.read_bytes()[41:])
    assert not writer.is_complete(root, settings)
    generate_msrvtt(root, seed=0, sizes=SMALL, progress=False)
    assert writer.is_complete(root, settings) and all(path.read_bytes() == data for path, data in whole.items())


def test_a_complete_dataset_is_read_without_its_lock(msrvtt_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # found in review: a read-only cache holding a complete dataset failed, opening the lock file to write
    def no_lock(path: Path) -> None:
        raise PermissionError(f"[Errno 30] Read-only file system: '{path}'")

    monkeypatch.setattr(writer, "exclusive_lock", no_lock)
    assert generate_msrvtt(msrvtt_root, seed=3, sizes=SIZES, progress=False) == msrvtt_root


def test_a_marker_without_its_file_list_is_not_complete(tmp_path: Path) -> None:
    root = generate_msrvtt(tmp_path / "msrvtt", seed=0, sizes=SMALL, progress=False)
    marker = json.loads((root / writer.MARKER_NAME).read_text())
    settings = {k: v for k, v in marker.items() if k != "files"}
    (root / writer.MARKER_NAME).write_text(json.dumps(settings))  # as older versions wrote it, even when broken
    assert not writer.is_complete(root, settings)


@pytest.mark.parametrize("planted", ["../outside.txt", 7])
def test_a_marker_naming_files_outside_its_root_or_not_names_is_not_complete(tmp_path: Path, planted) -> None:
    root = generate_msrvtt(tmp_path / "msrvtt", seed=0, sizes=SMALL, progress=False)
    (tmp_path / "outside.txt").write_text("x")
    marker = json.loads((root / writer.MARKER_NAME).read_text())
    settings = {k: v for k, v in marker.items() if k != "files"}
    (root / writer.MARKER_NAME).write_text(json.dumps({**marker, "files": [planted]}))
    assert not writer.is_complete(root, settings)  # before: complete ("../outside.txt"), or a TypeError (7)


def test_a_dataset_is_marked_complete_only_with_every_video(tmp_path: Path) -> None:
    job = writer.VideoJob(tmp_path / "videos" / "gone.mp4", ())
    with pytest.raises(RuntimeError, match=r"1 of 1 generated videos are missing or empty \(e.g. .*gone.mp4\)"):
        writer.finish_dataset(tmp_path, {"format": "x"}, [job])
    assert not (tmp_path / writer.MARKER_NAME).exists()


def test_two_processes_never_generate_one_dataset_at_once(tmp_path: Path) -> None:
    """While another process generates (holds the lock), a second caller waits, then finds the data done."""
    import fcntl
    import threading

    root = tmp_path / "msrvtt"
    calls = []
    with open(tmp_path / ".msrvtt.lock", "a") as held:  # the lock the other process would hold
        fcntl.flock(held, fcntl.LOCK_EX)
        second = threading.Thread(target=lambda: calls.append(
            generate_msrvtt(root, seed=0, sizes=SMALL, progress=False)))
        second.start()
        second.join(timeout=1.0)
        assert second.is_alive() and not root.exists()  # waiting, having written nothing
        fcntl.flock(held, fcntl.LOCK_UN)
    second.join()
    assert calls == [root] and (root / writer.MARKER_NAME).is_file()
