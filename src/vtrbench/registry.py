"""The ground floor: one small registry class (name -> factory) and its instances, imported by every room.

Built-in entries register themselves with a decorator when their module is imported; the registry imports
them lazily: a registry with a built-in package imports every module of it on first use, then every plugin
that declares the registry's entry-point group (`vtrbench.methods`, `vtrbench.datasets`) in its package
metadata. A registry of built-in modules by name (`BACKBONES`, `DATA_ROOTS`) imports only the module of the
name asked for, so asking `DATA_ROOTS` for MSR-VTT's offline root imports `vtrbench.offline.msrvtt` (with the
world and the writer it needs), not the backbone's pretraining; listing its names imports all of them.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


class UnknownNameError(KeyError):
    """A name that is not registered; the message lists the known names and the closest ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PluginError(ValueError):
    """A plugin's entry point that cannot be loaded, or that takes a name already registered."""


@dataclass(frozen=True)
class Entry:
    name: str
    obj: Any
    source: str  # "vtrbench" for built-ins, else the distribution or module that registered it


class Registry:
    def __init__(self, kind: str, builtin_package: str | None, entry_point_group: str | None = None,
                 builtin_modules: dict[str, str] | None = None):
        """`builtin_modules`: name -> the module whose import registers that name."""
        self.kind = kind
        self._builtin_package = builtin_package
        self._group = entry_point_group
        self._builtin_modules = dict(builtin_modules or {})
        self._entries: dict[str, Entry] = {}
        self._loaded = False

    def register(self, name: str, source: str | None = None) -> Callable[[Any], Any]:
        def decorate(obj: Any) -> Any:
            src = source or _source_of(obj)
            old = self._entries.get(name)
            if old is not None and old.obj is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice: by {old.source} and by {src}")
            self._entries[name] = Entry(name, obj, src)
            return obj

        return decorate

    def _load(self, name: str | None = None) -> None:
        """Import what registers `name` (its own module when it has one), or with no name every entry."""
        if name in self._entries:
            return
        if name in self._builtin_modules:
            importlib.import_module(self._builtin_modules[name])
            if name in self._entries:
                return
        if self._loaded:
            return
        self._loaded = True
        for module in self._builtin_modules.values():
            importlib.import_module(module)
        if self._builtin_package:
            package = importlib.import_module(self._builtin_package)
            for info in pkgutil.iter_modules(package.__path__):
                importlib.import_module(f"{self._builtin_package}.{info.name}")
        if self._group:
            for ep in importlib.metadata.entry_points(group=self._group):
                dist = ep.dist.name if ep.dist is not None else ep.value
                where = f"the {self._group} entry point {ep.name} = {ep.value!r} of {dist}"
                try:
                    obj = ep.load()
                except Exception as err:  # whatever a plugin's import raises is the plugin's to fix
                    raise PluginError(f"{where} cannot be loaded ({type(err).__name__}: {err}); fix or uninstall "
                                      f"that package") from err
                # A plugin may point at a module whose import registers its classes, or at the class itself.
                is_module = isinstance(obj, type(importlib))
                entry = self._entries.get(ep.name)
                if entry is None:
                    if not is_module:
                        self.register(ep.name, source=dist)(obj)
                elif entry.obj is obj or (is_module and entry.source != "vtrbench"):  # its own registration
                    self._entries[ep.name] = Entry(entry.name, entry.obj, dist)
                else:  # a built-in's name: the plugin's class would be ignored unseen
                    raise PluginError(f"{self.kind} {ep.name!r} is registered twice: by {entry.source} and by "
                                      f"{where}; rename the plugin's entry point")

    def get(self, name: str) -> Any:
        self._load(name)
        if name not in self._entries:
            raise UnknownNameError(self.unknown_message(name))
        return self._entries[name].obj

    def unknown_message(self, name: str, extra: list[str] | None = None) -> str:
        known = sorted(set(self.names()) | set(extra or []))
        close = ([k for k in known if k.lower() == name.lower()]  # `DGL`: only its case differs
                 or difflib.get_close_matches(name, known, n=3, cutoff=0.5))
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        shown = ", ".join(known) if len(known) <= 30 else ", ".join(known[:30]) + ", ..."
        return f"unknown {self.kind} {name!r}.{hint} Known: {shown}"

    def identity(self, name: str, *args: Any) -> str | None:
        """What entry `name` builds from `args`, named so that the name changes whenever what it builds changes
        (a generated dataset's settings, a pretraining recipe), from its factory's optional `identity(*args)`;
        None where the entry has none or cannot name it (a file given by the user)."""
        named = getattr(self.get(name), "identity", None)
        return None if named is None else named(*args)

    def __contains__(self, name: str) -> bool:
        self._load(name)
        return name in self._entries

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def entries(self) -> Iterator[Entry]:
        self._load()
        return iter(sorted(self._entries.values(), key=lambda e: e.name))


def _source_of(obj: Any) -> str:
    module = getattr(obj, "__module__", "") or ""
    return "vtrbench" if module.startswith("vtrbench.") else module.split(".")[0] or "?"


METHODS = Registry("method", "vtrbench.methods", "vtrbench.methods")
DATASETS = Registry("dataset", "vtrbench.datasets", "vtrbench.datasets")
# name -> factory(pretrained, progress) of an nn.Module, for backbones that are not open_clip's own; its
# `identity(pretrained)` names the weights it loads (`Registry.identity`)
BACKBONES = Registry("backbone", None, builtin_modules={"vtrbench-tiny": "vtrbench.offline.tiny_clip"})
# dataset format name -> factory(progress) of the root of its offline default data (generated on first use);
# its `identity()` names the data it generates
DATA_ROOTS = Registry("offline data root", None, builtin_modules={
    name: f"vtrbench.offline.{name}" for name in ("msrvtt", "vatex", "lsmdc", "activitynet")})
