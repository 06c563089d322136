"""Prompt templates of the baselines: ``"a photo of a {name}"`` and its kin, filled per class.

The authors' augmenters format one template with the class's name in one of three
forms, and Diff-Mix appends the dataset's super-class; a template names these as
fields (:data:`PROMPT_FIELDS`):

- ``{name}``: the class name as the dataset writes it (DA-Fusion's Real-Guidance,
  ``real_guidance.py:68``);
- ``{bracketed_name}``: the name in angle brackets, spaces as underscores,
  ``<Black_footed_Albatross>``, as Diff-Mix's and DA-Fusion's ``format_name`` write it
  (Diff-Mix's Real-Gen prompts plain SD with it as ordinary text, ``real_mix.py:21-22, 84-85``);
- ``{metaclass}``: the super-class word (Diff-Mix's ``super_class``, ``diff_mix.py:148-149``);
- ``{concept}``: the class's learned concept token, ``<class_i>`` (methods with concepts:
  DA-Fusion's ``<Class_Name>`` token, Diff-Mix's ``<class_i>`` placeholder).

Pure Python.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

from diffii_datasets import _checks
from diffii_datasets._knobs import knob

__all__ = ["CONCEPT_FIELDS", "PLAIN_FIELDS", "PROMPT_FIELDS", "bracketed_name", "fill_prompt", "prompt_knob"]

PROMPT_FIELDS = {
    "name": "the class name",
    "bracketed_name": "the class name as <Class_Name> (spaces as underscores)",
    "metaclass": "the metaclass",
    "concept": "the class's learned concept token",
}
"""The fields a prompt template may name, and what each is."""
PLAIN_FIELDS = ("name", "bracketed_name", "metaclass")
"""The fields of a method without concepts."""
CONCEPT_FIELDS = (*PLAIN_FIELDS, "concept")
"""The fields of a method with concepts."""


def bracketed_name(name: str) -> str:
    """``<Class_Name>``: the authors' ``format_name`` (Diff-Mix ``diff_mix.py:22-23``, DA-Fusion
    ``textual_inversion.py:59-60``)."""
    return f"<{name.replace(' ', '_')}>"


def _template_check(fields: Sequence[str]):
    expected = "a prompt template naming only the fields " + ", ".join("{" + field + "}" for field in fields)

    def check(value: Any, name: str) -> str:
        value = _checks.check_one_line(value, name, expected=expected)
        try:
            parsed = list(string.Formatter().parse(value))
        except ValueError:
            _checks.fail(ValueError, name, expected + " (braces balanced)", value)
        for _, field, spec, conversion in parsed:
            if field is not None and (field not in fields or spec or conversion):
                _checks.fail(ValueError, name, expected, value)
        return value

    return check


def prompt_knob(default: str, fields: Sequence[str]) -> Any:
    """The ``prompt`` knob of a method whose templates may name ``fields``."""
    named = ", ".join("{" + field + "} (" + PROMPT_FIELDS[field] + ")" for field in fields)
    return knob(default, f"prompt template; its fields: {named}", _template_check(fields))


def fill_prompt(template: str, class_name: str, metaclass: str, concept: str | None = None) -> str:
    """``template`` for one class (``concept``: its learned token, for a method with concepts)."""
    values = {"name": class_name, "bracketed_name": bracketed_name(class_name), "metaclass": metaclass.strip()}
    if concept is not None:
        values["concept"] = concept
    return template.format(**values)
