"""Flags declared once: a group of flags builds one frozen config object.

A `FlagGroup` names the callable it builds (a frozen dataclass, or a function
such as `make_rule`) and one `Flag` per parameter it takes from the command
line. The group adds its flags to a parser and, after parsing, calls the
callable with their values: the defaults are the callable's own (its signature),
so a flag and its config field cannot drift apart, and nothing is copied from
argparse into a config by hand.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Flag:
    """One command-line flag and the parameter it fills.

    `param` defaults to the flag's name in snake case. `convert` turns the
    parsed value into the parameter's (lists become tuples by default). A flag
    with `shared=True` is declared by another group of the same parser and only
    read here (one `--source` feeds the selection and the fetch)."""

    name: str  # e.g. "--max-per-label"
    param: str | None = None
    convert: Callable[[Any], Any] | None = None
    shared: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)  # add_argument's

    @property
    def dest(self) -> str:
        return self.options.get("dest") or self.name.lstrip("-").replace("-", "_")

    @property
    def target(self) -> str:
        return self.param or self.dest


def flag(name: str, param: str | None = None, *, convert=None, shared=False, **kw):
    """A Flag; keyword arguments go to argparse's add_argument."""
    return Flag(name, param, convert, shared, kw)


def _as_given(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class FlagGroup(Generic[T]):
    """Flags that together build one `T` with `build(**params)`."""

    title: str  # the heading in --help
    build: Callable[..., T]
    flags: tuple[Flag, ...]

    def defaults(self) -> dict[str, Any]:
        """The build callable's parameter defaults (a default made by a
        factory, such as the time, is made when the config is built)."""
        if dataclasses.is_dataclass(self.build):
            return {
                f.name: f.default
                for f in dataclasses.fields(self.build)
                if f.default is not dataclasses.MISSING
            }
        return {
            name: p.default
            for name, p in inspect.signature(self.build).parameters.items()
            if p.default is not inspect.Parameter.empty
        }

    def add_arguments(self, group: Any) -> None:
        """Adds the flags to a parser, or to an argument group of one."""
        defaults = self.defaults()
        for f in self.flags:
            if f.shared:
                continue
            options = dict(f.options)
            if f.name.startswith("-"):  # argparse names a positional's dest itself
                options.setdefault("dest", f.dest)
            action = options.get("action")
            if action in ("store_true", "store_false", "append", "extend"):
                pass  # argparse's own defaults (False/True/None) are right
            elif "default" not in options and defaults.get(f.target) is not None:
                options["default"] = defaults[f.target]
            shown = options.get("default")
            if shown not in (None, "", ()) and "%(default)" not in options.get(
                "help", ""
            ):
                options["help"] = f"{options.get('help', '')} (default: %(default)s)"
            group.add_argument(f.name, **options)

    def from_args(self, args: argparse.Namespace, **given: Any) -> T:
        """`build` called with every flag's value (a flag left out and without
        a default of its own keeps the callable's default) plus `given`.
        ValueError from `build` is the user's to fix."""
        params = dict(given)
        for f in self.flags:
            value = getattr(args, f.dest)
            if f.convert is not None:
                value = f.convert(value)
            elif value is None:
                continue
            params[f.target] = _as_given(value)
        return self.build(**params)


def add_groups(parser: argparse.ArgumentParser, *groups: FlagGroup) -> None:
    """Adds each group's flags under its title (groups may share a title)."""
    headings: dict[str, Any] = {}
    for group in groups:
        if group.title not in headings:
            headings[group.title] = parser.add_argument_group(group.title)
        group.add_arguments(headings[group.title])


def at_least_one(text: str) -> int:
    """An argparse type: an int of 1 or more."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
