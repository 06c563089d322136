"""The API reference's griffe extension: the docstrings' reStructuredText as Markdown, and knobs as documented fields.

Loaded by ``mkdocs.yml`` (``extensions:`` of the python handler); nothing else imports it.

- The package's docstrings name other objects the Sphinx way (``:class:`~diffii_datasets.store.SyntheticStore```,
  ``:func:`load_setting```) and end a paragraph with ``::`` before an indented example. mkdocstrings renders
  Markdown, where both would show as written, so before a docstring is parsed each role becomes a code span of
  the name Sphinx would display (the last part after ``~``, the title of ``title <target>``) and a final ``::``
  a single colon (the indented block after it is a Markdown code block as it stands).
- A config field declared with ``knob(default, help, check)`` (``diffii_datasets._knobs``) has its help text in
  the declaration, not in a docstring: it becomes the field's docstring, and the default its value (what the
  signature shows), so every knob of ``DiffIIConfig``'s parts, the classifier's ``Recipe`` and the quality settings
  is listed with its default and help.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from griffe import Attribute, Docstring, Extension, Object

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):`(?P<body>[^`]+)`")
LITERAL_MARKER = re.compile(r"(?<=\S)::$", re.MULTILINE)
CODE_SPAN = re.compile(r"(`+).+?\1")


def _display(match: re.Match[str]) -> str:
    body = match["body"].strip()
    titled = re.fullmatch(r"(?P<title>.+?)\s*<(?P<target>[^>]+)>", body)
    if titled:
        return f"`{titled['title']}`"
    if body.startswith("~"):
        body = body[1:].rsplit(".", 1)[-1]
    return f"`{body}`"


def markdown_docstring(text: str) -> str:
    """``text`` with every role a code span, every paragraph-ending ``::`` a ``:``, and a ``<`` of prose (a prompt's
    ``<class_i>``) escaped, so Markdown shows it rather than reading an HTML tag (code spans and the indented code
    blocks are left as they are)."""
    lines = LITERAL_MARKER.sub(":", ROLE.sub(_display, text)).split("\n")
    return "\n".join(line if line.startswith("    ") else _escape_prose(line) for line in lines)


def _escape_prose(line: str) -> str:
    pieces, last = [], 0
    for span in CODE_SPAN.finditer(line):
        pieces += [line[last:span.start()].replace("<", "&lt;"), span.group(0)]
        last = span.end()
    return "".join(pieces) + line[last:].replace("<", "&lt;")


def knob_parts(node: Any) -> tuple[str, str] | None:
    """``(default, help)`` of a ``name: type = knob(default, help, ...)`` field, as source text and as Markdown;
    ``None`` for any other node."""
    value = getattr(node, "value", None)
    if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "knob"):
        return None
    arguments = dict(zip(("default", "help"), value.args))
    arguments.update((keyword.arg, keyword.value) for keyword in value.keywords if keyword.arg in ("default", "help"))
    if "default" not in arguments or "help" not in arguments:
        return None
    return ast.unparse(arguments["default"]), _help_text(arguments["help"])


def _help_text(node: ast.expr) -> str:
    """A help text written as a string, or as strings and expressions joined by ``+`` (each expression as code)."""
    def operands(part: ast.expr) -> list[ast.expr]:
        if isinstance(part, ast.BinOp) and isinstance(part.op, ast.Add):
            return operands(part.left) + operands(part.right)
        return [part]

    text = "".join(part.value.replace("<", "&lt;") if isinstance(part, ast.Constant) and isinstance(part.value, str)
                   else f"`{ast.unparse(part)}`" for part in operands(node))
    return f"{text}."


class DocstringsAsMarkdown(Extension):
    """Each docstring as :func:`markdown_docstring`; a knob's help as its docstring, its default as its value."""

    def on_instance(self, *, node: Any, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)
        if isinstance(obj, Attribute) and (parts := knob_parts(node)) is not None:
            obj.value = parts[0]
            if obj.docstring is None:
                obj.docstring = Docstring(parts[1], parent=obj)
