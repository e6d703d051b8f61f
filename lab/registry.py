"""Names to entries, one way for every table: layer types, activations, model and augmentation
presets, datasets, CAM and embedding methods, export kinds.

A :class:`Registry` is a read-only mapping from canonical names to entries (what pickers list and
code indexes), plus lookups by any spelling a person, a CLI flag or a saved file may use:

    LAYER_TYPES = Registry("layer type", {"conv2d": Conv2d(), ...}, SpecError, aliases={"conv": "conv2d"})
    LAYER_TYPES.lookup("Conv-2D")   # the Conv2d entry
    LAYER_TYPES.lookup("conv3d")    # SpecError: unknown layer type 'conv3d'; use one of: conv2d, ...

One rule says when two spellings name the same thing: case, spaces, '_' and '-' do not count
('Grad-CAM' is 'gradcam', 'Fashion_MNIST' is 'fashion-mnist'). One refusal: the caller's own
exception class (so each package keeps its error and the CLI its exit codes) with the message
"unknown <kind> 'x'; use one of: a, b, c". Modelled on timm's ``get_act_layer`` and
``timm/models/_registry.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

_SEPARATORS = str.maketrans("", "", "_-")


def fold(name: str) -> str:
    """The form two spellings are compared in: 'Leaky-ReLU', 'leaky_relu' and 'leaky relu' are all 'leakyrelu'."""
    return "".join(name.lower().split()).translate(_SEPARATORS)


class Registry(Mapping[str, T]):
    """A table of named entries of one kind; indexing and iteration use canonical names only."""

    def __init__(self, kind: str, entries: Mapping[str, T], error: type[Exception], *,
                 aliases: Mapping[str, str] | None = None, also: tuple[str, ...] = ()):
        """``kind`` names the table in messages; ``error`` is raised for an unknown name; ``aliases``
        maps other names to canonical ones; ``also`` lists names the caller accepts before asking the
        registry (such as 'none' for no activation), so the refusal lists them too."""
        self.kind = kind
        self.error = error
        self.aliases = dict(aliases or {})
        self._entries = dict(entries)
        self._also = also
        self._by_fold: dict[str, str] = {}
        for spelling, name in [*((name, name) for name in self._entries), *self.aliases.items()]:
            self._add(spelling, name)

    def _add(self, spelling: str, name: str) -> None:
        """Refuse, at import time, an alias to nothing and a spelling that is already taken: both are
        mistakes in the table, and a redundant alias hides that the rule already covers it."""
        if name not in self._entries:
            raise ValueError(f"{self.kind} alias {spelling!r} points to {name!r}, which is not an entry")
        key = fold(spelling)
        if key in self._by_fold:
            raise ValueError(f"{self.kind} spelling {spelling!r} already means {self._by_fold[key]!r}")
        self._by_fold[key] = name

    def name_of(self, name: Any) -> str:
        """The canonical name for any spelling or alias of an entry; the caller's error otherwise."""
        found = self._by_fold.get(fold(name)) if isinstance(name, str) else None
        if found is None:
            raise self.error(self.refusal(name))
        return found

    def lookup(self, name: Any) -> T:
        """The entry for any spelling or alias of its name; the caller's error otherwise."""
        return self._entries[self.name_of(name)]

    def recognises(self, name: Any) -> bool:
        """Whether ``name`` is a spelling of an entry, for callers that try other readings next."""
        return isinstance(name, str) and fold(name) in self._by_fold

    def refusal(self, name: Any) -> str:
        """The message for an unknown name: what was given and every valid name."""
        return f"unknown {self.kind} {name!r}; use one of: {', '.join([*self._entries, *self._also])}"

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
