import pytest

from vtrbench.benchmark.registry import DATASETS, METHODS, Registry, UnknownNameError


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
