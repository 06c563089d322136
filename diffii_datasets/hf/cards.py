"""Dataset cards: find the template in ``hub_cards/`` and render it.

A template is a Markdown file with a YAML front matter and a Jinja body. The front
matter holds what is fixed for a dataset family (licence, source datasets, tags,
pretty name); the code adds what depends on the data (``configs``, ``dataset_info``,
``size_categories`` and a ``diffii`` record per configuration). The body extends
``_base.md``, which holds the text every family shares (what the set is, how it was
generated, how to load it, its splits, its limits and the citation); a family
template fills in the source dataset and its terms. ``generic.md`` is the card of a
configuration that is not a paper setting: it names no source and claims no licence.

Where the templates live: ``hub_cards/`` at the top of the repository is their one
home; ``diffii_datasets/hub_cards`` links to it, so a checkout, an editable install
and a wheel (which carries the files) all find them next to the package.
``DIFFII_HUB_CARDS`` points at another folder of templates.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import DatasetCard, DatasetCardData

from diffii_datasets.settings.base import FAMILIES

__all__ = ["GENERIC_CARD", "cards_dir", "render_card", "resolve_card"]
BASE_TEMPLATE = "_base.md"
# The template of a config that is not one of the paper's settings: no source dataset, no licence claimed.
GENERIC_CARD = "generic"
# Card YAML keys computed from the data: they win over a template's front matter.
DATA_KEYS = ("configs", "dataset_info", "diffii", "size_categories")


def cards_dir() -> Path:
    """The folder of the card templates: ``$DIFFII_HUB_CARDS``, else the package's ``hub_cards/``."""
    configured = os.environ.get("DIFFII_HUB_CARDS")
    if configured:
        folder = Path(configured).expanduser()
        if not (folder / BASE_TEMPLATE).is_file():
            raise FileNotFoundError(f"DIFFII_HUB_CARDS={configured!r} does not hold the card templates "
                                    f"({BASE_TEMPLATE} and one <family>.md per family)")
        return folder
    folder = Path(__file__).resolve().parents[1] / "hub_cards"
    if not (folder / BASE_TEMPLATE).is_file():
        raise FileNotFoundError(
            f"the dataset card templates were not found in the package ({folder} has no {BASE_TEMPLATE}): the "
            "installation is incomplete. Reinstall diffii-datasets, set DIFFII_HUB_CARDS to a copy of the "
            "repository's hub_cards/, or pass card= the path of a template")
    return folder


def resolve_card(card: str | os.PathLike | None, family: str | None) -> Path:
    """The template file for ``card``: a family name, ``"generic"``, a template's path, or ``None``.

    ``None`` means ``family``'s template, or the generic one when ``family`` is ``None``
    (a config that is not a paper setting).
    """
    if card is None:
        card = family if family is not None else GENERIC_CARD
    if isinstance(card, str) and (card in FAMILIES or card == GENERIC_CARD):
        return cards_dir() / f"{card}.md"
    path = Path(card).expanduser()
    if path.suffix == ".md" and path.is_file():
        return path
    raise ValueError(f"card must be a dataset family ({', '.join(FAMILIES)}), {GENERIC_CARD!r} or the path of an "
                     f"existing .md template, got {card!r}")


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
