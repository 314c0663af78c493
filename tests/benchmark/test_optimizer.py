"""AdamW's beta2 and eps are run settings (PyTorch's by default); the paper preset gives STOP its scripts'."""

import pytest
import torch

from vtrbench.benchmark.config import ConfigError, resolve_config
from vtrbench.benchmark.runner import make_optimizer
from vtrbench.methods.backbone import load_backbone
from vtrbench.methods.bitfit import BitFit


def test_the_optimizer_takes_beta2_and_eps_from_the_config():
    method = BitFit(load_backbone("vtrbench-tiny", "random"))
    default = make_optimizer(method, resolve_config(["method=bitfit"]))
    assert all(g["betas"] == (0.9, 0.999) and g["eps"] == 1e-8 for g in default.param_groups)
    clip_style = make_optimizer(method, resolve_config(["method=bitfit", "train.adam_beta2=0.98",
                                                       "train.adam_eps=1e-6"]))
    assert all(g["betas"] == (0.9, 0.98) and g["eps"] == pytest.approx(1e-6) for g in clip_style.param_groups)
    assert isinstance(clip_style, torch.optim.AdamW)


@pytest.mark.parametrize("method", ["stop", "dgl"])
@pytest.mark.parametrize("dataset", ["msrvtt", "vatex", "lsmdc", "activitynet"])
def test_the_paper_preset_gives_stop_and_dgl_their_scripts_adamw(method, dataset):
    config = resolve_config([f"method={method}", f"dataset={dataset}", "preset=paper"])
    assert (config.train.adam_beta2, config.train.adam_eps) == (0.98, pytest.approx(1e-6))


@pytest.mark.parametrize("override", ["train.adam_beta2=1.0", "train.adam_beta2=-0.1", "train.adam_eps=0"])
def test_out_of_range_adam_settings_are_refused(override):
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        resolve_config(["method=bitfit", override])
