import subprocess
import sys

import pytest

from vtrbench.registry import BACKBONES, DATA_ROOTS, DATASETS, METHODS, Registry, UnknownNameError


def test_builtins_are_registered():
    assert {"zero_shot", "full_finetune"} <= set(METHODS.names())
    assert "msrvtt" in DATASETS.names()
    assert all(e.source == "vtrbench" for e in METHODS.entries() if e.name in ("zero_shot", "full_finetune"))


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UnknownNameError) as err:
        METHODS.get("zero_shoot")
    assert "Did you mean 'zero_shot'" in str(err.value)
    assert "full_finetune" in str(err.value)


def test_register_decorator_and_duplicates():
    reg = Registry("thing", None)

    @reg.register("a")
    class A:
        pass

    assert reg.get("a") is A
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a")(type("B", (), {}))


def plugin_registry(monkeypatch, *entry_points: tuple[str, str]) -> Registry:
    """A registry with one built-in entry ("a", source vtrbench) and the given plugin entry points."""
    import importlib.metadata

    group = "vtrbench.test_things"
    points = [importlib.metadata.EntryPoint(name, value, group) for name, value in entry_points]
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **kw: points if kw.get("group") == group else real(**kw))
    reg = Registry("thing", None, group)
    reg.register("a", source="vtrbench")(type("A", (), {}))
    return reg


def test_a_plugin_is_registered_under_its_entry_point(monkeypatch):
    reg = plugin_registry(monkeypatch, ("ordered", "collections:OrderedDict"))
    import collections

    assert reg.names() == ["a", "ordered"] and reg.get("ordered") is collections.OrderedDict


def test_a_broken_plugin_or_one_that_takes_a_built_in_name_is_one_clear_error(monkeypatch):
    # found in review: a typo in a plugin's entry point broke every command with a traceback, and a plugin
    # named like a built-in was ignored while `list` credited the built-in to it
    from vtrbench.registry import PluginError

    reg = plugin_registry(monkeypatch, ("mine", "collections:NoSuchClass"))
    with pytest.raises(PluginError, match=r"the vtrbench.test_things entry point mine = 'collections:NoSuchClass' "
                                          r"of collections:NoSuchClass cannot be loaded \(AttributeError: .*\); "
                                          r"fix or uninstall that package"):
        reg.names()
    reg = plugin_registry(monkeypatch, ("a", "collections:OrderedDict"))
    with pytest.raises(PluginError, match="thing 'a' is registered twice: by vtrbench and by the vtrbench.test_things "
                                          "entry point a = 'collections:OrderedDict'"):
        reg.names()


def test_the_offline_room_registers_a_backbone_and_every_dataset_s_data_root():
    assert "vtrbench-tiny" in BACKBONES.names()
    assert set(DATA_ROOTS.names()) == {"msrvtt", "vatex", "lsmdc", "activitynet"}
    assert all(DATA_ROOTS.get(DATASETS.get(name).offline_format) for name in DATA_ROOTS.names())


def test_methods_and_datasets_import_nothing_of_the_rooms_above_them():
    """Dependencies point one way: a method or a dataset imports the registry and its own room only."""
    script = """
import importlib, pkgutil, sys
import vtrbench.datasets, vtrbench.methods
for package in (vtrbench.methods, vtrbench.datasets):
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")
print(sorted(m for m in sys.modules if m.startswith(("vtrbench.benchmark", "vtrbench.offline", "vtrbench.reports"))))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_asking_for_one_offline_data_root_imports_its_module_alone():
    """A dataset asks DATA_ROOTS for its offline root: that imports the format's module, not the offline
    backbone (open_clip, its pretraining) nor the other formats."""
    script = """
import sys
from vtrbench.registry import DATA_ROOTS
assert "msrvtt" in DATA_ROOTS and DATA_ROOTS.get("msrvtt")
print(sorted(m for m in sys.modules if m.startswith("vtrbench.offline.") or m == "open_clip"))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['vtrbench.offline.msrvtt', 'vtrbench.offline.world', 'vtrbench.offline.writer']"
