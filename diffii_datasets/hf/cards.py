"""Dataset cards: find the family's template in ``hub_cards/`` and render it.

A template is a Markdown file with a YAML front matter and a Jinja body. The front
matter holds what is fixed for a dataset family (licence, source datasets, tags,
pretty name); the code adds what depends on the data (``configs``, ``dataset_info``,
``size_categories`` and a ``diffii`` record per configuration). The body extends
``_base.md``, which holds the text every family shares (what the set is, how it was
generated, how to load it, its splits, its limits and the citation); a family
template fills in the source dataset and its terms.

Where the templates live: ``hub_cards/`` sits at the top of the repository, next to
the package, so they are found from a checkout or an editable install. A wheel does
not carry them: there, pass ``card=`` the path of a template (a copy of the family's
file from the repository), or set ``DIFFII_HUB_CARDS`` to a folder holding them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import DatasetCard, DatasetCardData

from diffii_datasets.datasets.settings import FAMILIES

__all__ = ["cards_dir", "render_card", "resolve_card"]
BASE_TEMPLATE = "_base.md"
# Card YAML keys computed from the data: they win over a template's front matter.
DATA_KEYS = ("configs", "dataset_info", "diffii", "size_categories")


def cards_dir() -> Path:
    """The folder of the card templates: ``$DIFFII_HUB_CARDS``, else ``hub_cards/`` of the checkout."""
    configured = os.environ.get("DIFFII_HUB_CARDS")
    if configured:
        folder = Path(configured).expanduser()
        if not (folder / BASE_TEMPLATE).is_file():
            raise FileNotFoundError(f"DIFFII_HUB_CARDS={configured!r} does not hold the card templates "
                                    f"({BASE_TEMPLATE} and one <family>.md per family)")
        return folder
    folder = Path(__file__).resolve().parents[2] / "hub_cards"
    if not (folder / BASE_TEMPLATE).is_file():
        raise FileNotFoundError(
            f"the dataset card templates (hub_cards/) were not found next to the package ({folder}). They ship "
            "with the repository, not with the wheel: run from a checkout or an editable install, set "
            "DIFFII_HUB_CARDS to a copy of hub_cards/, or pass card= the path of a template")
    return folder


def resolve_card(card: str | os.PathLike | None, family: str | None) -> Path:
    """The template file for ``card``: a family name, a path to a template, or ``None`` for ``family``'s."""
    if card is None:
        if family is None:
            raise ValueError("card is required when config_name is not one of the paper's settings: pass a family "
                             f"({', '.join(FAMILIES)}) or the path of a card template")
        card = family
    if isinstance(card, str) and card in FAMILIES:
        return cards_dir() / f"{card}.md"
    path = Path(card).expanduser()
    if path.suffix == ".md" and path.is_file():
        return path
    raise ValueError(f"card must be a dataset family ({', '.join(FAMILIES)}) or the path of an existing .md "
                     f"template, got {card!r}")


def split_front_matter(text: str, where: str) -> tuple[dict[str, Any], str]:
    """``(YAML front matter, body)`` of a Markdown file that starts with a ``---`` block."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise ValueError(f"{where} must start with a YAML front matter between '---' lines")
    for end in range(1, len(lines)):
        if lines[end].strip() == "---":
            metadata = yaml.safe_load("".join(lines[1:end])) or {}
            if not isinstance(metadata, dict):
                raise ValueError(f"{where}: the front matter must be a YAML mapping")
            return metadata, "".join(lines[end + 1:])
    raise ValueError(f"{where}: the YAML front matter is not closed by a '---' line")


def render_card(template: Path, card_data: DatasetCardData, context: dict[str, Any]) -> DatasetCard:
    """Render ``template`` into a card.

    YAML: ``card_data`` (an existing card's keys and the :data:`DATA_KEYS`), with the
    template's front matter replacing every other key it sets, so licence or tag fixes
    in a template reach cards made before them. Body: the template's Jinja body with
    ``context``.
    """
    import jinja2

    static, body = split_front_matter(template.read_text(encoding="utf-8"), str(template))
    metadata = card_data.to_dict()
    metadata.update({key: value for key, value in static.items() if key not in DATA_KEYS})
    data = DatasetCardData(**metadata)
    search_path = [str(template.parent)]
    try:
        search_path.append(str(cards_dir()))  # a template outside hub_cards/ may still extend _base.md
    except FileNotFoundError:
        pass
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(search_path),
        undefined=jinja2.StrictUndefined,  # a misspelt variable is an error, never an empty string
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["json"] = lambda value: json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    text = environment.from_string(body).render(card_data=data.to_dict(), **context)
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n{text.lstrip()}")
