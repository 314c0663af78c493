import json
import re

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from safetensors.torch import load_file

from tests.benchmark.conftest import tiny_run_overrides
from vtrbench.benchmark.cli import main
from vtrbench.benchmark.config import resolve_config, run_dir
from vtrbench.benchmark.leaderboard import run_leaderboard
from vtrbench.benchmark.results import CHECKPOINT_FILE, RunConflictError
from vtrbench.benchmark.runner import contrastive_loss, cosine_with_warmup, execute, record_failure, score_matrix
from vtrbench.methods.base import RetrievalMethod
from vtrbench.schema import RESULT_FILE, WEIGHTS_FILE


class BestFrame(RetrievalMethod):
    """A text-conditioned score: each caption meets its best real frame (per-frame video tensor)."""

    def video_head(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return features @ self.clip.visual.proj

    def similarity(self, text: torch.Tensor, video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        per_frame = torch.einsum("nd,btd->nbt", F.normalize(text, dim=-1), F.normalize(video, dim=-1))
        return per_frame.masked_fill(~mask, float("-inf")).amax(dim=-1)


def test_a_run_writes_its_result_and_tuned_weights(tiny_msrvtt, tmp_path):
    config = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs"))
    result = execute(config)
    out = run_dir(config)
    on_disk = json.loads((out / RESULT_FILE).read_text())
    assert on_disk["status"] == "finished"
    assert set(on_disk["metrics"]) == {"t2v", "v2t", "rsum"}
    assert len(on_disk["ranks"]["t2v"]) == 8 and len(on_disk["ranks"]["v2t"]) == 8
    assert on_disk["model_selection"] == {"rule": "last_epoch", "epoch": 2, "step": on_disk["timing"]["steps"]}
    assert on_disk["activation"] == "gelu"  # vtrbench-tiny's, read from the modules built
    assert on_disk["config"]["train"]["epochs"] == 2
    assert on_disk["timing"]["epochs"] == 2 and on_disk["timing"]["steps"] > 0
    weights = load_file(str(out / WEIGHTS_FILE))
    assert sum(t.numel() for t in weights.values()) == result["params"]["tuned"]
    assert (out / "config.yaml").is_file()
    assert not (out / CHECKPOINT_FILE).exists()  # the epoch checkpoint goes once the result is written

    # a finished run is skipped: same result, file untouched
    before = (out / RESULT_FILE).stat().st_mtime_ns
    assert execute(config)["metrics"] == result["metrics"]
    assert (out / RESULT_FILE).stat().st_mtime_ns == before


def test_a_finished_run_is_reused_only_for_the_same_config(tiny_msrvtt, tmp_path, capsys):
    runs = tmp_path / "runs"

    def config(**extra):
        return resolve_config(tiny_run_overrides(tiny_msrvtt, runs, method="zero_shot", **extra))

    finished = execute(config())
    result_file = run_dir(config()) / RESULT_FILE
    before = result_file.read_bytes()
    # keys that only change where results go and what is printed: the same run
    output_only = {"quiet": "false", "output.wandb_project": "other", "output.reports_dir": str(tmp_path / "r"),
                   "data.num_workers": 1}
    assert execute(config(**output_only))["metrics"] == finished["metrics"]
    # anything else: refused, naming the key, before any work; the finished result stays as it was
    for key, value in (("train.epochs", 3), ("msrvtt.root", str(tmp_path / "other")), ("data.num_frames", 2)):
        with pytest.raises(RunConflictError, match=re.escape(key)):
            execute(config(**{key: value}))
        assert main(["run", *tiny_run_overrides(tiny_msrvtt, runs, method="zero_shot", **{key: value})]) == 2
        assert key in capsys.readouterr().err
        assert result_file.read_bytes() == before


def test_a_leaderboard_refuses_finished_runs_of_another_config_before_running_anything(tiny_msrvtt, tmp_path):
    runs = tmp_path / "runs"
    base = [o for o in tiny_run_overrides(tiny_msrvtt, runs) if not o.startswith(("method=", "dataset="))]
    assert run_leaderboard([*base, "methods=[zero_shot]", "datasets=[msrvtt]",
                            f"output.reports_dir={tmp_path / 'reports'}"], quiet=True) == 0
    with pytest.raises(RunConflictError, match="train.epochs"):
        run_leaderboard([*base, "methods=[full_finetune,zero_shot]", "datasets=[msrvtt]", "train.epochs=3",
                         f"output.reports_dir={tmp_path / 'reports'}"], quiet=True)
    assert not any(runs.rglob("full_finetune*"))  # nothing ran


def test_an_unfinished_run_of_another_config_is_not_resumed(tiny_msrvtt, tmp_path, capsys):
    from vtrbench.benchmark.runner import Run

    config = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", **{"train.epochs": 1}))
    other = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", **{"train.epochs": 1,
                                                                                 "train.lr": 0.5}))
    run = Run(other)
    run_dir(other).mkdir(parents=True)
    (run_dir(other) / "config.yaml").write_text(OmegaConf.to_yaml(other))
    run.train(run.split("train"))
    assert (run_dir(config) / CHECKPOINT_FILE).is_file()
    result = execute(config)
    assert "belongs to another config (train.lr" in capsys.readouterr().err
    assert result["timing"]["epochs"] == 1 and result["timing"]["steps"] > 0  # trained afresh, not resumed


def test_frozen_trunk_and_zero_tuned(tiny_msrvtt, tmp_path):
    config = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot"))
    result = execute(config)
    assert result["params"]["tuned"] == 0
    assert result["timing"]["steps"] == 0


def test_a_failure_is_recorded_and_never_replaces_a_finished_result(tiny_msrvtt, tmp_path):
    bad = resolve_config(tiny_run_overrides(tmp_path / "nowhere", tmp_path / "runs"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        execute(bad)
    failed = record_failure(bad, FileNotFoundError("nowhere"))
    assert failed["status"] == "failed" and "nowhere" in failed["error"]

    good = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs2", method="zero_shot"))
    execute(good)
    assert record_failure(good, RuntimeError("late"))["error"] == "RuntimeError: late"  # said, not written
    assert json.loads((run_dir(good) / RESULT_FILE).read_text())["status"] == "finished"


def test_only_rank_0_of_a_torchrun_group_records_a_failure(tiny_msrvtt, tmp_path, monkeypatch):
    """Every rank of a failed `torchrun ... vtrbench run` calls record_failure; before, each wrote the file."""
    config = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot"))
    monkeypatch.setenv("RANK", "1")
    assert record_failure(config, RuntimeError("rank 1 failed"))["status"] == "failed"  # said
    assert not (run_dir(config) / RESULT_FILE).exists()  # not written
    monkeypatch.setenv("RANK", "0")
    record_failure(config, RuntimeError("rank 0 failed"))
    assert json.loads((run_dir(config) / RESULT_FILE).read_text())["error"] == "RuntimeError: rank 0 failed"


def test_cosine_schedule_warms_up_then_decays():
    total, warmup = 100, 10
    values = [cosine_with_warmup(s, total, warmup) for s in range(total)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[10] == pytest.approx(1.0) and values[-1] < 0.01
    assert all(a >= b for a, b in zip(values[10:], values[11:], strict=False))


def test_wandb_offline_receives_config_steps_and_result(tiny_msrvtt, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    from vtrbench.benchmark.tracking import Tracker

    config = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", **{"output.wandb": "true"}))
    tracker = Tracker(config, tmp_path / "wb")
    assert tracker.run is not None and tracker.run.settings.mode == "offline"
    assert tracker.run.config["method"] == "full_finetune"
    tracker.log({"train/loss": 1.5, "train/lr": 1e-3}, step=1)
    tracker.finish({"metrics": {"t2v": {"R1": 10.0}, "v2t": {"R1": 5.0}, "rsum": 15.0}, "params": {"tuned": 3}})
    assert tracker.run is None
    run_files = list((tmp_path / "wb").rglob("*.wandb"))  # the offline file a later `wandb sync` uploads
    assert run_files and run_files[0].stat().st_size > 0


def test_wandb_online_without_a_key_falls_back_to_offline_with_one_warning(tiny_msrvtt, tmp_path, monkeypatch,
                                                                          capsys):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    (tmp_path / "netrc").write_text("machine example.org login user password secret\n")  # no wandb entry
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    from vtrbench.benchmark.tracking import Tracker

    config = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", **{"output.wandb": "true"}))
    tracker = Tracker(config, tmp_path / "wb")
    assert tracker.run is not None and tracker.run.settings.mode == "offline"
    tracker.finish()
    Tracker(config, tmp_path / "wb2").finish()
    assert capsys.readouterr().err.count("WANDB_MODE=online but no API key") == 1


def test_wandb_is_off_by_default(tiny_msrvtt, tmp_path):
    from vtrbench.benchmark.tracking import Tracker

    config = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs"))
    assert Tracker(config, tmp_path / "wb").run is None


def test_loss_and_evaluation_hand_the_frame_masks_to_a_text_conditioned_similarity(
    tiny_backbone, caption_tokens, random_clips
):
    method = BestFrame(tiny_backbone).eval()
    frames, mask = random_clips([3, 1, 2, 3], 3)
    with torch.no_grad():
        text, video = method.encode_text(caption_tokens), method.encode_video(frames, mask)
        padded = video + 100 * (~mask)[..., None]  # would win every max if the mask were lost
        expected = method.similarity(text, padded, mask)
        whole = score_matrix(method, text, padded, mask, torch.device("cpu"))
        seen = []
        similarity = method.similarity
        method.similarity = lambda t, v, m: seen.append(len(t)) or similarity(t, v, m)
        # 4 clips x 3 frames = 12 scores per caption: a budget of 25 allows chunks of 2 captions
        chunked = score_matrix(method, text, padded, mask, torch.device("cpu"), max_elements=25)
        del method.similarity
        assert len(whole) == len(text) and seen and max(seen) == 2 and sum(seen) == len(text)
        torch.testing.assert_close(whole, expected)
        torch.testing.assert_close(chunked, expected)
        labels = torch.arange(len(text))
        symmetric = (F.cross_entropy(expected, labels) + F.cross_entropy(expected.T, labels)) / 2
        torch.testing.assert_close(contrastive_loss(method, text, padded, mask), symmetric)


def test_a_result_records_what_reproducing_it_needs(tiny_msrvtt, tmp_path):
    import open_clip
    import torch

    config = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot", device="cpu"))
    record = execute(config)["reproducibility"]
    assert record == {
        "processes": 1, "batch_per_process": 8, "global_batch": 8, "gpu_model": None, "gpu_count": 0,
        "precision": "fp32", "torch": torch.__version__, "cuda": None, "open_clip": open_clip.__version__,
        "post_processing": "none (raw similarity: no QB-Norm, no DSL, no re-ranking)",
    }


def test_a_frozen_trunk_method_whose_tuned_tensors_the_heads_never_reach_is_an_error(tiny_msrvtt, tmp_path):
    """Found in review: a tuned layer in `encode_text` outside the heads was counted, saved and applied at its
    random start, never trained (or, alone, failed in backward with torch's own error)."""
    from vtrbench.methods.linear_probe import LinearProbe
    from vtrbench.registry import METHODS

    class OutsideTheHeads(LinearProbe):
        def __init__(self, backbone, config=None):
            super().__init__(backbone, config)
            self.extra = torch.nn.Linear(4, 4)  # tuned (requires_grad), used by no head

    METHODS.register("outside_the_heads")(OutsideTheHeads)
    try:
        config = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="outside_the_heads",
                                                   **{"train.lr": 0.01}))
        with pytest.raises(ValueError, match=r"OutsideTheHeads sets frozen_trunk = True, .* these tuned tensors are "
                                             r"not reached there: extra.weight, extra.bias\. Move them into a head"):
            execute(config)
    finally:
        METHODS._entries.pop("outside_the_heads")
