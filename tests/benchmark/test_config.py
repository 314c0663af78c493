import pytest
from omegaconf import OmegaConf

from vtrbench.benchmark.config import ConfigError, config_file, load_preset, resolve_config, run_dir


def test_merge_order_and_sections():
    cfg = resolve_config(["method=full_finetune", "train.epochs=7", "seed=3"])
    assert cfg.method == "full_finetune"
    assert cfg.train.epochs == 7  # command line wins
    # the offline preset's rule beats base.yaml (dgl's rate differs from base.yaml's)
    rule = next(r for r in load_preset("offline").rules if r.method == "dgl")
    dgl = resolve_config(["method=dgl"])
    assert dgl.train.lr == rule.set.train.lr != OmegaConf.load(config_file("base.yaml")).train.lr
    assert cfg.data.num_frames == 4  # base.yaml
    assert "msrvtt" in cfg and cfg.msrvtt.root is None
    assert run_dir(cfg).parts[-4:] == ("msrvtt", "vtrbench-tiny", "full_finetune", "seed3")


def test_unknown_key_names_the_key():
    with pytest.raises(ConfigError, match="train.epochz"):
        resolve_config(["train.epochz=3"])


@pytest.mark.parametrize(("override", "group"), [("output=runs2", "output"), ("dgl=linear", "dgl"),
                                                  ("msrvtt=data", "msrvtt")])
def test_a_group_set_to_a_value_names_the_group_and_its_keys(override, group):
    # before: "command line: key '?': Merge error: str is not a subclass of OutputConfig"
    with pytest.raises(ConfigError, match=rf"command line: {group} is a group of settings, not a value; set one "
                                          rf"of {group}\.\w+, "):
        resolve_config(["method=dgl", "dataset=msrvtt", override])


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match="train.epochs"):
        resolve_config(["train.epochs=many"])


@pytest.mark.parametrize("option", ["vop.variant=P", "lora.rank=abc", "vatex.root=/data/vatex"])
def test_an_option_of_a_method_or_dataset_outside_the_run_is_an_error(option):
    with pytest.raises(ConfigError, match=f"{option.split('=')[0]}: an option of .* not in this run"):
        resolve_config(["method=dgl", "dataset=msrvtt", option])


def test_a_matrix_gives_each_run_its_own_sections_and_checks_the_others():
    from vtrbench.benchmark.leaderboard import plan

    runs = plan(["methods=[dgl,lora]", "datasets=[msrvtt]", "seeds=[0]", "lora.rank=4"])
    assert [config.lora.rank for _, config in runs if config.method == "lora"] == [4]
    assert "lora" not in runs[0][1] and not any("lora.rank" in o for o in runs[0][0])
    with pytest.raises(ConfigError, match="lora.rank.*could not be converted to Integer"):
        plan(["methods=[dgl,lora]", "datasets=[msrvtt]", "lora.rank=abc"])
    with pytest.raises(ConfigError, match="vop.variant: an option of vop, which is not among"):
        plan(["methods=[dgl]", "datasets=[msrvtt]", "vop.variant=P"])


@pytest.mark.parametrize("override", ["msrvtt.root=", "msrvtt.root= "])
def test_an_empty_root_is_an_error_not_the_offline_data(override):
    with pytest.raises(ConfigError, match="an empty root"):
        resolve_config([override])
    assert resolve_config(["msrvtt.root=null"]).msrvtt.root is None  # null asks for the offline data


def test_an_empty_root_in_a_yaml_layer_is_an_error():
    from omegaconf import OmegaConf

    with pytest.raises(ConfigError, match="msrvtt.root='': an empty root"):
        resolve_config(OmegaConf.create({"msrvtt": {"root": ""}}))


def test_an_override_that_is_not_yaml_is_one_clear_error():
    with pytest.raises(ConfigError, match=r"override 'methods=\[dgl': not valid YAML"):
        resolve_config(["methods=[dgl"])


def test_unknown_method_is_a_clear_error():
    from vtrbench.registry import UnknownNameError

    with pytest.raises(UnknownNameError, match="Did you mean"):
        resolve_config(["method=ful_finetune"])


def test_malformed_override():
    with pytest.raises(ConfigError, match="key=value"):
        resolve_config(["train.epochs"])


def test_paper_preset_resolves_for_every_method_and_dataset():
    from vtrbench.benchmark.config import load_preset
    from vtrbench.methods.backbone import parse_quick_gelu

    preset = load_preset("paper")
    assert all(rule.source for rule in preset.rules)
    for dataset in preset.datasets:
        for method in preset.methods:
            cfg = resolve_config(["preset=paper", f"method={method}", f"dataset={dataset}"])
            assert cfg.backbone.name == "ViT-B-32" and cfg.backbone.pretrained == "openai"
            assert parse_quick_gelu(cfg.backbone.quick_gelu) is True  # OpenAI's weights, also from a file
            assert cfg.data.num_frames == (64 if dataset == "activitynet" else 12)
    dgl = resolve_config(["preset=paper", "method=dgl", "dataset=lsmdc"])
    assert dgl.train.lr == pytest.approx(1e-2) and dgl.train.epochs == 10 and dgl.dgl.latent == "linear"
    assert dgl.data.batch_size == 512
    ft = resolve_config(["preset=paper", "method=full_finetune", "dataset=msrvtt"])
    assert ft.train.lr * ft.train.backbone_lr_scale == pytest.approx(1e-7)  # CLIP4Clip's 1e-4 x coef_lr 1e-3
    # the command line still wins over the preset
    assert resolve_config(["preset=paper", "method=dgl", "train.lr=0.5"]).train.lr == 0.5


def test_paper_preset_gives_the_rivals_their_own_recipes():
    def paper(method: str, dataset: str):
        return resolve_config(["preset=paper", f"method={method}", f"dataset={dataset}"])

    for dataset, (r, shared) in {"msrvtt": (8, 16), "lsmdc": (8, 16), "vatex": (16, 64),
                                 "activitynet": (16, 512)}.items():
        cma = paper("cross_modal_adapter", dataset)
        assert (cma.cross_modal_adapter.bottleneck, cma.cross_modal_adapter.shared_dim) == (r, shared)
        assert (cma.train.lr, cma.train.epochs, cma.data.batch_size) == (1e-5, 5, 128)
    mv = paper("mv_adapter", "msrvtt")
    assert (mv.train.lr, mv.train.epochs, mv.data.batch_size) == (5e-6, 5, 128)
    assert mv.mv_adapter.cmt_position == "down_in" and not mv.mv_adapter.train_clip_biases
    anet = paper("mv_adapter", "activitynet")  # the position tables follow the 64 frames and words
    assert (anet.mv_adapter.num_frames, anet.mv_adapter.max_words, anet.mv_adapter.cmt_layers) == (64, 64, 1)
    adaptformer = paper("adaptformer", "vatex")
    assert (adaptformer.train.epochs, adaptformer.data.batch_size) == (5, 32)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="known: offline, paper"):
        resolve_config(["preset=papr"])


def test_dgl_transformer_table_follows_the_frame_count():
    from vtrbench.benchmark.config import method_options

    cfg = resolve_config(["method=dgl", "dgl.latent=transformer", "data.num_frames=5"])
    assert method_options(cfg).num_frames == 5
    assert cfg.variant == "latent-transformer"


def test_the_offline_preset_is_the_default_and_every_rule_names_its_source():
    from vtrbench.benchmark.config import load_preset

    assert resolve_config([]).preset == "offline"
    rules = load_preset("offline").rules
    assert rules and all(rule.source for rule in rules)
    for rule in rules:  # the rates live in the preset, not in the method yamls
        where = [f"method={rule.method}", f"dataset={rule.get('dataset', 'msrvtt')}"]
        assert resolve_config([*where, "preset="]).train.lr == pytest.approx(1e-3)
        if "dataset" in rule:  # a rule of the dataset's own is what its runs read
            assert resolve_config(where).train.lr == rule.set.train.lr
    # searched per dataset: every method that trains has its own rule on each of the four offline datasets
    from importlib import resources

    shipped = resources.files("vtrbench").joinpath("configs", "methods")
    trains = sorted(entry.name.removesuffix(".yaml") for entry in shipped.iterdir()
                    if entry.name.endswith(".yaml") and entry.name != "zero_shot.yaml")
    assert "stop" in trains and "dgl" in trains
    datasets = ("msrvtt", "vatex", "lsmdc", "activitynet")
    assert sorted((rule.method, rule.get("dataset")) for rule in rules) == sorted(
        (m, d) for m in trains for d in datasets)
    assert resolve_config(["method=dgl", "preset=paper"]).train.lr == pytest.approx(2e-3)  # paper replaces it


def test_a_method_yaml_may_not_set_the_tuning_budget(tmp_path):
    from omegaconf import OmegaConf

    from vtrbench.benchmark.config import check_method_tune_section

    path = tmp_path / "my_method.yaml"
    check_method_tune_section(OmegaConf.create({"tune": {"space": []}}), path)
    for key in ("trials", "metric"):
        with pytest.raises(ConfigError, match=rf"my_method.yaml: tune.{key}: the tuning budget is the same"):
            check_method_tune_section(OmegaConf.create({"tune": {key: 3 if key == "trials" else "rsum"}}), path)


def test_a_setting_absent_from_a_saved_run_stands_for_its_default_and_only_for_it():
    from omegaconf import OmegaConf

    from vtrbench.benchmark.config import config_differences

    requested = resolve_config(["method=bitfit", "dataset=msrvtt"])
    saved = OmegaConf.to_container(requested, resolve=True)
    del saved["train"]["adam_eps"]  # a run saved before the setting existed
    assert config_differences(saved, requested) == []
    changed = resolve_config(["method=bitfit", "dataset=msrvtt", "train.adam_eps=1e-6"])
    assert config_differences(saved, changed) == ["train.adam_eps: 1e-08 -> 1e-06"]
    saved["train"]["lr"] = 0.5
    assert config_differences(saved, requested)[0].startswith("train.lr: 0.5 -> ")


def test_a_config_file_is_read_again_once_it_changes(tmp_path):
    """Config files are parsed once per version (a leaderboard resolves one config per run from them)."""
    import os

    from vtrbench.benchmark.config import _yaml_data

    path = tmp_path / "layer.yaml"
    path.write_text("train:\n  lr: 1e-3\n")
    first = _yaml_data(path)
    assert first == {"train": {"lr": 0.001}}
    first["train"]["lr"] = 5.0  # the caller's copy, not the cache's
    assert _yaml_data(path) == {"train": {"lr": 0.001}}
    stat = path.stat()
    path.write_text("train:\n  lr: 2e-3\n")  # same size: the modification time tells the versions apart
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert _yaml_data(path) == {"train": {"lr": 0.002}}
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="layer.yaml: expected a mapping of keys at the top level"):
        _yaml_data(path)


def test_resolving_leaves_the_callers_overrides_as_they_were():
    overrides = OmegaConf.from_dotlist(["method=dgl", "preset=null", "train.lr=0.01"])
    before = OmegaConf.to_yaml(overrides)
    config = resolve_config(overrides)
    config.train.lr = 0.5
    assert OmegaConf.to_yaml(overrides) == before
    assert resolve_config(["method=dgl"]).train.lr != 0.5  # nor the cached layers


def test_a_preset_of_your_own_is_a_yaml_file_given_by_its_path(tmp_path, monkeypatch):
    own = tmp_path / "longer.yaml"
    own.write_text("seeds: [0]\nrules:\n  - method: dgl\n    dataset: msrvtt\n"
                   "    source: \"vtrbench tune method=dgl dataset=msrvtt train.epochs=12\"\n"
                   "    set: {train: {lr: 0.1, epochs: 12}}\n")
    monkeypatch.chdir(tmp_path)
    cfg = resolve_config(["method=dgl", "preset=longer.yaml"])
    assert (cfg.train.lr, cfg.train.epochs) == (0.1, 12)
    assert cfg.preset == str(own.resolve())  # recorded by its absolute path, wherever the run is read
    other = resolve_config(["method=dgl", "dataset=vatex", f"preset={own}"])  # no rule: the method yaml's
    assert other.train.lr == pytest.approx(1e-3)
    assert load_preset("longer.yaml").seeds == [0]  # a leaderboard's matrix reads it too


def test_a_preset_of_your_own_may_extend_another(tmp_path):
    # one rule for a method of your own on top of the offline preset, without copying it
    (tmp_path / "mine.yaml").write_text(
        "extends: offline\nseeds: [0]\ndefaults: {train: {epochs: 5}}\nrules:\n  - method: bitfit\n"
        "    dataset: msrvtt\n    source: \"vtrbench tune method=bitfit dataset=msrvtt\"\n"
        "    set: {train: {lr: 0.5}}\n")
    (tmp_path / "more.yaml").write_text("extends: mine.yaml\n")  # a file is named relative to its own folder
    offline = resolve_config(["method=dgl", "dataset=vatex"])
    for name in ("mine.yaml", "more.yaml"):
        mine = resolve_config(["method=bitfit", "dataset=msrvtt", f"preset={tmp_path / name}"])
        assert (mine.train.lr, mine.train.epochs) == (0.5, 5)  # the later rule wins; its defaults apply
        dgl = resolve_config(["method=dgl", "dataset=vatex", f"preset={tmp_path / name}"])
        assert dgl.train.lr == offline.train.lr  # the offline rule still holds
        assert load_preset(str(tmp_path / name)).seeds == [0]


@pytest.mark.parametrize("text, message", [
    ("extends: 3\n", r"loop.yaml: extends: expected the name of a shipped preset"),
    ("extends: loop.yaml\n", r"loop.yaml: extends: the presets extend each other in a loop"),
    ("extends: nowhere\n", r"loop.yaml: extends: unknown preset 'nowhere'"),
])
def test_a_preset_that_extends_badly_is_refused_naming_it(tmp_path, text, message):
    (tmp_path / "loop.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        resolve_config(["method=dgl", f"preset={tmp_path / 'loop.yaml'}"])


def test_a_run_whose_rate_nobody_chose_is_said(tmp_path, monkeypatch):
    from vtrbench.benchmark import config as config_module
    from vtrbench.benchmark.config import untuned_rate, untuned_rate_note

    real_config_file = config_module.config_file

    def untuned(*overrides):
        return untuned_rate(resolve_config(list(overrides)), list(overrides))

    assert not untuned("method=dgl", "dataset=lsmdc")  # the offline preset's rule
    assert not untuned("method=zero_shot")  # tunes nothing
    assert untuned("method=dgl", "dataset=lsmdc", "preset=")  # no preset: base.yaml's rate
    assert not untuned("method=dgl", "dataset=lsmdc", "preset=", "train.lr=0.01")  # the user's own
    # found in review: a rate the method's own yaml sets is that file's choice, not base.yaml's
    method_yaml = config_file("methods", "lora.yaml")
    monkeypatch.setattr(config_module, "config_file", lambda *parts: (tmp_path / "lora.yaml") if parts == (
        "methods", "lora.yaml") else real_config_file(*parts))
    (tmp_path / "lora.yaml").write_text(method_yaml.read_text() + "train:\n  lr: 0.05\n")
    assert not untuned("method=lora", "dataset=lsmdc", "preset=")
    # found in review: a space that searches something else left base.yaml's rate unsaid
    assert untuned("method=dgl", "dataset=lsmdc", "preset=", "tune.trials=2",
                   "tune.space=[{key: dgl.latent, choices: [linear, transformer]}]")
    note = untuned_rate_note({("dgl", "lsmdc"): 1e-3, ("vop", "vatex"): 1e-3})
    assert "for dgl on lsmdc (train.lr=0.001), vop on vatex (train.lr=0.001): base.yaml's rate" in note
    assert "vtrbench tune method=dgl dataset=lsmdc" in note and "extends: offline" in note


def test_the_presets_name_is_not_a_setting_of_the_run():
    from vtrbench.benchmark.config import config_differences

    saved = OmegaConf.to_container(resolve_config(["method=dgl", "dataset=lsmdc"]), resolve=True)
    requested = resolve_config(["method=dgl", "dataset=lsmdc"])
    requested.preset = "/home/me/mine.yaml"  # a preset that extends offline gives the run the same settings
    assert config_differences(saved, requested) == []


def test_a_shipped_preset_is_named_by_a_plain_name():
    # before, `preset=../methods/dgl` read configs/methods/dgl.yaml (refused only for its keys)
    with pytest.raises(ConfigError, match=r"preset='../methods/dgl': a shipped preset's name is a plain name"):
        resolve_config(["method=dgl", "preset=../methods/dgl"])


def test_a_preset_file_that_is_missing_or_has_a_rule_without_source_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="preset=.*nothere.yaml: no such file"):
        resolve_config([f"preset={tmp_path / 'nothere.yaml'}"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - method: dgl\n    set: {train: {lr: 0.1}}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: rules\[0\] has no source"):
        resolve_config(["method=dgl", f"preset={bad}"])


@pytest.mark.parametrize("text, message", [
    # a rule that matches nothing would drop its setting unseen
    ("rules:\n  - {method: dlg, dataset: msrvtt, source: s, set: {train: {lr: 0.1}}}\n",
     r"rules\[0\]: unknown method 'dlg'; known: .*dgl"),
    ("rules:\n  - {method: dgl, dataset: msrvt, source: s, set: {train: {lr: 0.1}}}\n",
     r"rules\[0\]: unknown dataset 'msrvt'; known: activitynet"),
    ("rules:\n  - {method: dgl, source: s, sett: {train: {lr: 0.1}}}\n",
     r"rules\[0\]: unknown key\(s\) 'sett'; a rule has method, dataset, source, set"),
    ("rules:\n  method: dgl\n  source: s\n  set: {train: {lr: 0.1}}\n",
     r"rules: expected a list of rules .*got a dict"),
    ("rules:\n  - {method: dgl, source: s, set: 0.1}\n", r"rules\[0\]: set: expected a mapping"),
    ("seed: [0]\nrules: []\n", r"unknown key\(s\) 'seed'; a preset has methods, datasets, seeds"),
    # the matrix: before, `methods: dgl` was read letter by letter ("unknown method 'd'", naming no file)
    ("methods: dgl\n", r"methods: expected a non-empty list \(e.g. methods: \[adaptformer\]\), got 'dgl'"),
    ("datasets: [msrvtt, msrvt]\n", r"datasets: unknown name 'msrvt'; known: activitynet"),
    ("seeds: [0, -1]\n", r"seeds: -1 is not an integer from 0 to 2\*\*32 - 1"),
    # before, OmegaConf's "Object of unsupported type: 'int'", naming neither the file nor the key
    ("defaults: 5\n", r"defaults: expected a mapping of settings .*got 5"),
    # found in review: each planned every run twice, where the command line's seeds=[0,0] was refused
    ("seeds: [0, 0]\n", r"seeds: 0 repeated \(each run would be planned twice\)"),
    ("methods: [dgl, dgl]\n", r"methods: dgl repeated"),
    # found in review: a section no run of the rule reads was dropped without a word
    ("rules:\n  - {method: dgl, source: s, set: {vop: {variant: C}}}\n",
     r"rules\[0\]: set: vop: the options of another method than the rule's method: dgl"),
    ("rules:\n  - {dataset: msrvtt, source: s, set: {vatex: {root: /data}}}\n",
     r"rules\[0\]: set: vatex: the options of another dataset than the rule's dataset: msrvtt"),
])
def test_a_preset_file_with_a_misspelt_rule_is_refused_naming_it(tmp_path, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=f"bad.yaml: {message}"):
        resolve_config(["method=dgl", f"preset={bad}"])


@pytest.mark.parametrize("device", ["banana", "cuda:x", "gpu"])
def test_a_device_no_run_can_mean_is_refused(device):
    with pytest.raises(ConfigError, match=rf"device='{device}': expected auto, cpu, cuda, cuda:N, mps or xpu"):
        resolve_config(["method=dgl", f"device={device}"])
    assert resolve_config(["method=dgl", "device=cuda:1"]).device == "cuda:1"  # checked when the run starts


def test_a_gpu_that_is_not_there_is_said():
    import torch

    from vtrbench.benchmark.runner import pick_device

    if torch.cuda.is_available():
        with pytest.raises(RuntimeError, match=r"device=cuda:99: this machine has \d+ CUDA GPU"):
            pick_device("cuda:99")
    else:  # before, torch's "Found no NVIDIA driver" traceback
        with pytest.raises(RuntimeError, match="device=cuda: torch finds no CUDA GPU on this machine"):
            pick_device("cuda")
    assert pick_device("cpu").type == "cpu"


def test_a_val_fraction_no_hold_out_can_mean_is_refused_even_beside_a_val_file():
    # found by an audit: msrvtt.val_fraction=2 passed unseen while msrvtt.val_csv was set
    with pytest.raises(ConfigError, match=r"msrvtt.val_fraction=2.0: expected a fraction between 0 and 1"):
        resolve_config(["method=dgl", "dataset=msrvtt", "msrvtt.val_fraction=2"])


def test_a_method_whose_config_is_not_a_dataclass_is_told_so():
    # found in review: a plain class gave omegaconf's "Unexpected type annotation" or a TypeError
    from vtrbench.methods.linear_probe import LinearProbe
    from vtrbench.registry import METHODS

    class NotADataclass:
        hidden: int = 3

    class PlainOptions(LinearProbe):
        Config = NotADataclass

    METHODS.register("plain_options")(PlainOptions)
    try:
        with pytest.raises(ConfigError, match=r"method 'plain_options' \(tests.benchmark.test_config.*PlainOptions\): "
                                              r"its `Config` must be a @dataclass of its options"):
            resolve_config(["method=plain_options"])
    finally:
        METHODS._entries.pop("plain_options")


def test_a_mapping_without_spaces_is_told_how_yaml_writes_it():
    with pytest.raises(ConfigError, match=r"a mapping \{key: value\} with a space after each colon"):
        resolve_config(["method=dgl", "tune.space=[{key:train.lr,log_range:[1e-2,1.0]}]"])


def test_the_offline_rates_on_real_data_or_another_backbone_are_said_to_be_the_offline_worlds():
    """Found in review: the offline preset's rates, chosen for vtrbench-tiny on the generated data, reached a
    ViT-B/32 run on real data without a word."""
    from vtrbench.benchmark.config import offline_rates_elsewhere

    assert offline_rates_elsewhere(resolve_config(["method=dgl", "dataset=msrvtt"])) is None
    real = resolve_config(["method=dgl", "dataset=msrvtt", "msrvtt.root=/data/msrvtt", "backbone.name=ViT-B-32",
                           "backbone.pretrained=openai"])
    note = offline_rates_elsewhere(real)
    assert "chosen for vtrbench-tiny on the generated data" in note and "data at /data/msrvtt" in note
    assert "the backbone ViT-B-32 (openai)" in note and "preset=paper" in note
    assert offline_rates_elsewhere(resolve_config(["method=dgl", "dataset=msrvtt", "preset=paper",
                                                   "msrvtt.root=/data/msrvtt"])) is None
    assert offline_rates_elsewhere(resolve_config(["method=zero_shot", "msrvtt.root=/data/msrvtt"])) is None
