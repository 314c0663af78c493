import pytest

from vtrbench.benchmark.config import ConfigError, resolve_config, run_dir


def test_merge_order_and_sections():
    cfg = resolve_config(["method=full_finetune", "train.epochs=7", "seed=3"])
    assert cfg.method == "full_finetune"
    assert cfg.train.epochs == 7  # command line wins
    assert cfg.train.lr == pytest.approx(1e-4)  # methods/full_finetune.yaml beats base.yaml
    assert cfg.data.num_frames == 8  # base.yaml
    assert "msrvtt" in cfg and cfg.msrvtt.root is None
    assert run_dir(cfg).parts[-4:] == ("msrvtt", "vtrbench-tiny", "full_finetune", "seed3")


def test_unknown_key_names_the_key():
    with pytest.raises(ConfigError, match="train.epochz"):
        resolve_config(["train.epochz=3"])


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match="train.epochs"):
        resolve_config(["train.epochs=many"])


def test_other_methods_sections_are_ignored_for_this_run():
    # one leaderboard command line can carry options of several methods
    cfg = resolve_config(["method=zero_shot", "full_finetune.nonexistent=1"])
    assert "full_finetune" not in cfg


def test_unknown_method_is_a_clear_error():
    from vtrbench.benchmark.registry import UnknownNameError

    with pytest.raises(UnknownNameError, match="Did you mean"):
        resolve_config(["method=ful_finetune"])


def test_malformed_override():
    with pytest.raises(ConfigError, match="key=value"):
        resolve_config(["train.epochs"])
