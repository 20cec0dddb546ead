"""Declared options: what a model, task or backend accepts as KEY=VALUE, parsed in one place.

A plugin declares its options once (name, type, default, help). The same
declaration parses the user's strings, lists the options in `harness info`,
rejects an unknown name with a did-you-mean, and says which values belong
in the plugin's fingerprint, so a new option cannot be left out of the cache key.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError

TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")
KINDS = (str, int, float, bool, list)  # list: a list of words, given as a comma list ("not,never")


class OptionError(HarnessError, ValueError):
    """A bad option name or value; a ValueError too, so option checks read like argument checks."""


@dataclass(frozen=True)
class Option:
    """One option: its type, default (None: the plugin decides, e.g. per family), help and limits.

    `choices` restricts a string option; `minimum` bounds a number; `affects_output`
    says whether the value can change predictions (then it is fingerprinted). The
    default is checked against all of these when the option is declared, so a
    `"yes"` given to a bool fails at once instead of being truthy later. A `list`
    option holds words (a tuple of strings), given on the command line as `a,b,c`.
    """

    name: str
    kind: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    affects_output: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise TypeError(f"option {self.name!r}: kind must be one of str, int, float, bool, list")
        if self.kind is list and isinstance(self.default, list | tuple):
            object.__setattr__(self, "default", tuple(self.default))  # frozen: a default must not be shared
        problem = self.default_problem()
        if problem is not None:
            raise OptionError(f"option {self.name!r} has the default {self.default!r}, {problem}")

    def default_problem(self) -> str | None:
        """Why the declared default does not fit the declared kind, choices or minimum (None: it fits)."""
        value, kind = self.default, self.kind
        if value is None:
            return None  # the plugin decides
        if kind is bool and not isinstance(value, bool):
            return "which is not a bool; give True or False"
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            return "which is not a whole number"
        if kind is float and (isinstance(value, bool) or not isinstance(value, int | float)):
            return "which is not a number"
        if kind is str and not isinstance(value, str):
            return "which is not a string"
        if kind is list and not (isinstance(value, tuple) and all(isinstance(v, str) for v in value)):
            return "which is not a list of strings"
        if self.choices and value not in self.choices:
            return f"which is not one of its choices ({', '.join(self.choices)})"
        if self.minimum is not None and kind in (int, float) and value < self.minimum:
            return f"which is below its minimum {self.minimum:g}"
        return None

    def parse(self, raw: str) -> Any:
        """The typed value of `raw`; empty means the default."""
        text = raw.strip()
        if text == "":
            return self.default
        if self.kind is bool:
            if text.lower() in TRUE_WORDS:
                return True
            if text.lower() in FALSE_WORDS:
                return False
            raise OptionError(f"option {self.name}={raw!r} must be true or false")
        if self.kind is list:
            return tuple(word for part in text.split(",") if (word := part.strip()))
        if self.kind in (int, float):
            try:
                value = self.kind(text)
            except ValueError:
                noun = "a whole number" if self.kind is int else "a number"
                raise OptionError(f"option {self.name}={raw!r} must be {noun}") from None
            if self.minimum is not None and value < self.minimum:
                raise OptionError(f"option {self.name}={raw!r} must be at least {self.minimum:g}")
            return value
        if self.choices and text not in self.choices:
            raise OptionError(f"option {self.name}={raw!r}: choose one of {', '.join(self.choices)}")
        return text

    def describe(self) -> str:
        """One line for `harness info`: name, type, default and help."""
        kind = (
            "|".join(self.choices)
            if self.choices
            else "comma list"
            if self.kind is list
            else self.kind.__name__
        )
        shown = (
            repr(self.default)
            if isinstance(self.default, str)
            else ",".join(self.default)
            if isinstance(self.default, tuple)
            else self.default
        )
        default = "" if self.default is None else f" [default: {shown}]"
        return f"{self.name} ({kind}){default}: {self.help}"


class OptionSet:
    """The options one plugin declares, in the order they are documented."""

    def __init__(self, *options: Option) -> None:
        self._by_name: dict[str, Option] = {}
        for option in options:
            if option.name in self._by_name:
                raise TypeError(f"option {option.name!r} is declared twice")
            self._by_name[option.name] = option

    def __add__(self, other: OptionSet) -> OptionSet:
        return OptionSet(*self, *other)

    def __iter__(self) -> Iterator[Option]:
        return iter(self._by_name.values())

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def names(self) -> list[str]:
        return list(self._by_name)

    def parse(self, given: Mapping[str, str], *, strict: bool = False, owner: str = "") -> dict[str, Any]:
        """Every declared option typed, defaults filled in.

        Not strict, names this set does not declare are left alone: the user's
        `--model-option` reaches every model of a board, and each reads its own.
        Strict (a task's own options), an unknown name is an error.
        """
        if strict:
            self.check_names(given, owner=owner)
        return {
            name: option.parse(given[name]) if name in given else option.default
            for name, option in self._by_name.items()
        }

    def check_names(self, given: Sequence[str] | Mapping[str, str], *, owner: str) -> None:
        """Refuse names this set does not declare, with the closest declared name and the full list."""
        for name in given:
            if name not in self._by_name:
                raise OptionError(unknown_option_message(name, self.names(), owner))

    def fingerprinted(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The values that can change predictions, for the plugin's fingerprint."""
        return {name: values[name] for name, option in self._by_name.items() if option.affects_output}


def unknown_option_message(name: str, known: Sequence[str], owner: str, *, verb: str = "has") -> str:
    """`OWNER has no option 'x'; did you mean 'y'? (options: ...)`; `verb="read"` for a group of models."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(sorted(known)) or "none"
    return f"{owner} {verb} no option {name!r}{hint} (options: {listed})"


NO_OPTIONS = OptionSet()


def scoped_options(options: Mapping[str, str], *names: str) -> dict[str, str]:
    """The options one model reads: those given to every model, then those scoped to one of its names.

    `smollm2.engine=llama.cpp` reaches SmolLM2 only, also inside a hybrid, so two
    families can read one option name with values only one of them accepts.
    A model name may hold dots (`openai:gpt-4.1`), an option name never does.
    """
    chosen = {key: value for key, value in options.items() if "." not in key}
    for key, value in options.items():
        scope, dot, name = key.rpartition(".")
        if dot and scope in names:
            chosen[name] = value
    return chosen
