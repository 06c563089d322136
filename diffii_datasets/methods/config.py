"""``MethodConfig``: the base of every method's config, its knobs declared once and written flat.

A method's config is a frozen dataclass of its own knobs (declared with
:func:`~diffii_datasets._knobs.knob`) composed with parts, each a knob dataclass of
a layer below (Diff-II's :class:`~diffii_datasets.diffusion.GenerationConfig` and
:class:`~diffii_datasets.diffusion.ConceptConfig`). Users write every knob flat, a
part's by its own name or with the part's prefix (``concept_train_steps``); the flat
names, defaults, checks and help texts come from the declarations, and so do the
command line's flags, the Hub builder's keywords, the JSON form and the store key.
Pure Python: importing this module loads no torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from diffii_datasets import _checks
from diffii_datasets._io import fingerprint
from diffii_datasets._knobs import Knob, knobs_of

__all__ = ["PRESETS", "TINY_MODEL", "MethodConfig", "Part"]

logger = logging.getLogger(__name__)


TINY_MODEL = "tiny"
"""The model name of the offline tiny pipeline (:func:`diffii_datasets.testing.tiny_pipeline` with seed 0: random
weights, 32 px, built on the spot): what ``--model tiny`` and :meth:`MethodConfig.preset` ``("tiny")`` load. Its
images are noise by design; it shows a method running in a minute on a CPU, with nothing to download."""
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "tiny": {"model": TINY_MODEL, "resolution": 32, "concept_resolution": 32, "concept_train_steps": 20,
             "concept_batch_size": 4, "inversion_steps": 50, "batch_size": 8, "expansion_rate": 2.0},
}
"""Named starting points of :meth:`MethodConfig.preset`: ``"paper"``, the published defaults; ``"tiny"``, the tiny
offline model at its own 32 px with a few concept steps (20 instead of 35,000), 50 inversion steps and 2 synthetic
images per real one (what ``diffii-datasets demo`` runs). A method takes the knobs of a preset it declares."""


@dataclass(frozen=True)
class Part:
    """A part of a method's config: the attribute holding it, its knob dataclass, and its knobs' flat prefix."""

    attribute: str
    cls: type
    prefix: str = ""


@dataclass(frozen=True, init=False, repr=False)
class MethodConfig:
    """Base of a method's config (see the module docstring); subclasses declare fields and :attr:`PARTS`.

    Construct one from flat knobs (``DiffIIConfig(split_ratio=0.1)``), from its parts, or
    both, the flat knobs winning. A wrong value raises ``TypeError``/``ValueError`` naming
    the knob that was passed.
    """

    method: ClassVar[str]
    """The name the method is registered under (:func:`diffii_datasets.methods.get_method`)."""
    PARTS: ClassVar[tuple[Part, ...]] = ()
    LEGACY_NAMES: ClassVar[dict[str, str]] = {}
    """Knob names of earlier versions and their names now; :meth:`from_dict` reads both."""
    DEFAULTS: ClassVar[Mapping[str, Any]] = {}
    """Defaults of this config's own knobs that differ from their declarations (merged along the class's
    bases): a method reuses another's config class with its own published values."""

    def __init__(self, **knobs: Any) -> None:
        parts = {part.attribute: knobs.pop(part.attribute, None) for part in self.PARTS}
        for part in self.PARTS:
            if parts[part.attribute] is not None and not isinstance(parts[part.attribute], part.cls):
                _checks.fail(TypeError, part.attribute, f"a {part.cls.__name__}", parts[part.attribute])
        table = self._knob_table()
        unknown = [name for name in knobs if name not in table]
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown knob(s) {unknown}{self._suggestion(unknown[0])}; "
                            f"the knobs are: {', '.join(table)}")
        values: dict[str, dict[str, Any]] = {"": {}, **{part.attribute: {} for part in self.PARTS}}
        for name, value in knobs.items():
            item = table[name]
            values[self._attribute_of(item.owner)][item.field] = item.check(value, name)
        for part in self.PARTS:
            start = parts[part.attribute] or self._default_part(part)
            object.__setattr__(self, part.attribute, dataclasses.replace(start, **values[part.attribute]))
        for item in (item for item in table.values() if item.owner is type(self)):  # its own knobs
            object.__setattr__(self, item.field, values[""].get(item.field, item.check(item.default, item.name)))

    @classmethod
    def _default_part(cls, part: Part) -> Any:
        """A part's value when none is given (its field's default factory)."""
        field = next(f for f in dataclasses.fields(cls) if f.name == part.attribute)
        return field.default_factory()  # type: ignore[misc]

    def __getattr__(self, name: str) -> Any:
        """Flat read access to the parts' knobs: ``config.split_ratio``, ``config.concept_train_steps``."""
        item = type(self)._knob_table().get(name) if not name.startswith("_") else None
        if item is None or item.owner is type(self):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(getattr(self, self._attribute_of(item.owner)), item.field)

    @classmethod
    def _attribute_of(cls, owner: type) -> str:
        return next((part.attribute for part in cls.PARTS if part.cls is owner), "")

    @classmethod
    def _knob_table(cls) -> dict[str, Knob]:
        """Flat name to knob, in the order the command line lists them: the first own knob, the parts, the rest."""
        cached = cls.__dict__.get("_table")
        if cached is None:
            own = cls._own_knobs()
            parts = []
            for part in cls.PARTS:  # a part's knobs default to this config's default part, not its class's
                start = cls._default_part(part)
                parts += [dataclasses.replace(item, default=getattr(start, item.field))
                          for item in knobs_of(part.cls, part.prefix)]
            cached = {item.name: item for item in own[:1] + parts + own[1:]}
            cls._table = cached  # type: ignore[attr-defined]
        return cached

    @classmethod
    def _own_knobs(cls) -> list[Knob]:
        """The config's own knobs (its parts' aside), with the defaults :attr:`DEFAULTS` gives them."""
        defaults: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            defaults.update(vars(klass).get("DEFAULTS", {}))
        own = knobs_of(cls)
        unknown = sorted(set(defaults) - {item.name for item in own})
        if unknown:
            raise TypeError(f"{cls.__name__}.DEFAULTS names {unknown}, which are not knobs of its own")
        return [dataclasses.replace(item, default=defaults[item.name]) if item.name in defaults else item
                for item in own]

    @classmethod
    def knobs(cls) -> list[Knob]:
        """Every knob by its flat name: default, check and help text (the CLI and the Hub builder use these)."""
        return list(cls._knob_table().values())

    @classmethod
    def preset(cls, name: str, **knobs: Any) -> MethodConfig:
        """The knobs of preset ``name`` (see :data:`PRESETS`) this method declares, then ``knobs``.

        ``DiffIIConfig.preset("tiny")`` runs offline in about a minute on a CPU (the tiny model is built on the
        spot, nothing is downloaded); ``DiffIIConfig.preset("paper")`` is ``DiffIIConfig()``.
        """
        _checks.check_choice(name, "preset", tuple(PRESETS))
        return cls(**{**cls.declared(PRESETS[name]), **knobs})

    @classmethod
    def declared(cls, knobs: dict[str, Any]) -> dict[str, Any]:
        """The items of ``knobs`` that are knobs of this config (a setting's or a preset's, for any method)."""
        table = cls._knob_table()
        return {name: value for name, value in knobs.items() if name in table}

    def replace(self, **knobs: Any) -> MethodConfig:
        """A copy with the given flat knobs changed."""
        return self.with_parts(**knobs)

    def with_parts(self, **changes: Any) -> MethodConfig:
        """A copy with whole parts (``concepts=ConceptConfig()``) and flat knobs changed."""
        own = {item.name: getattr(self, item.name) for item in knobs_of(type(self))}
        parts = {part.attribute: getattr(self, part.attribute) for part in self.PARTS}
        return type(self)(**{**parts, **own, **changes})

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON form: ``{knob: value}`` for every knob (tuples as lists)."""
        return {item.name: _jsonable(getattr(self, item.name)) for item in self._knob_table().values()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MethodConfig:
        """Inverse of :meth:`to_dict`; also reads the knob names of earlier versions (:attr:`LEGACY_NAMES`)."""
        if not isinstance(data, dict):
            _checks.fail(TypeError, "data", f"a dict of {cls.__name__} knobs", data)
        data = dict(data)
        for old, new in cls.LEGACY_NAMES.items():
            if old in data and new not in data:
                logger.info("config knob %r is called %r now", old, new)
                data[new] = data.pop(old)
        unknown = sorted(set(data) - set(cls._knob_table()))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {unknown}{cls._suggestion(unknown[0])}; "
                             f"valid fields: {sorted(cls._knob_table())}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> MethodConfig:
        return cls.from_dict(json.loads(text))

    def hash(self) -> str:
        """A stable digest of every knob (the same across processes and machines)."""
        return fingerprint(self.to_dict())

    def differences(self, other: MethodConfig) -> dict[str, tuple[Any, Any]]:
        """``{knob: (self's value, other's value)}`` for every knob that differs (knobs of one config only too)."""
        mine, theirs = self.to_dict(), other.to_dict()
        absent = "(not a knob of its method)"
        return {key: (mine.get(key, absent), theirs.get(key, absent)) for key in {**mine, **theirs}
                if mine.get(key, absent) != theirs.get(key, absent)}

    def __repr__(self) -> str:
        """The knobs that differ from the defaults, as the call that makes this config."""
        changed = self.differences(type(self)())
        return f"{type(self).__name__}(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in changed) + ")"

    @classmethod
    def _suggestion(cls, name: str) -> str:
        close = difflib.get_close_matches(cls.LEGACY_NAMES.get(name, name), list(cls._knob_table()), n=1)
        return f" (did you mean {close[0]!r}?)" if close else ""

    @classmethod
    def declare_signature(cls) -> None:
        """Give ``cls.__init__`` the signature of its flat knobs (for ``help()``, IDEs and ``inspect``)."""
        parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)]
        parameters += [inspect.Parameter(part.attribute, inspect.Parameter.KEYWORD_ONLY, default=None)
                       for part in cls.PARTS]
        parameters += [inspect.Parameter(item.name, inspect.Parameter.KEYWORD_ONLY, default=item.default)
                       for item in cls._knob_table().values()]

        def __init__(self: Any, **knobs: Any) -> None:  # noqa: N807 - the signature is what differs
            MethodConfig.__init__(self, **knobs)

        __init__.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        __init__.__doc__ = cls.__doc__
        cls.__init__ = __init__  # type: ignore[method-assign]


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
