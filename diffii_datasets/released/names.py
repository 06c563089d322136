"""Matching the authors' class names to this package's classes, the way Diff-II's scripts match them.

The scripts name every class by a hard-coded list (``get_inversion.py`` lines 171-179,
``interpolation_le.py`` lines 249-257): the category folders of the released lists
(``img_name.split('/')[-2]``, ``train_classifier.py`` line 92) and the keys of the concept files'
``name2placeholder`` are those names, looked up after reading ``/`` and ``_`` as spaces.

- CUB, Aircraft, Cars, Pet: their names are the datasets' own (``Black_footed_Albatross``,
  ``F-16A_B`` for ``F-16A/B``, ``am_general_hummer_suv_2000``, ``american_bulldog``), so they match
  this package's class names by :func:`~diffii_datasets.diffusion.concepts.released_format.released_name_key`.
- Flowers-102 ships no class names: the authors' list (:data:`FLOWER_NAMES`) is in label order, so
  its ``i``-th name is class ``i``. torchvision's names differ in one place (``'pink-yellow dahlia?'``),
  so Flower-LT matches by position in that list, not by name.
"""

from __future__ import annotations

from collections.abc import Sequence

from diffii_datasets.diffusion.concepts.released_format import released_name_key

__all__ = ["FLOWER_NAMES", "match_categories"]

FLOWER_NAMES = (
    'pink_primrose', 'hard-leaved_pocket_orchid', 'canterbury_bells', 'sweet_pea', 'english_marigold', 'tiger_lily',
    'moon_orchid', 'bird_of_paradise', 'monkshood', 'globe_thistle', 'snapdragon', "colt's_foot", 'king_protea',
    'spear_thistle', 'yellow_iris', 'globe-flower', 'purple_coneflower', 'peruvian_lily', 'balloon_flower',
    'giant_white_arum_lily', 'fire_lily', 'pincushion_flower', 'fritillary', 'red_ginger', 'grape_hyacinth',
    'corn_poppy', 'prince_of_wales_feathers', 'stemless_gentian', 'artichoke', 'sweet_william', 'carnation',
    'garden_phlox', 'love_in_the_mist', 'mexican_aster', 'alpine_sea_holly', 'ruby-lipped_cattleya', 'cape_flower',
    'great_masterwort', 'siam_tulip', 'lenten_rose', 'barbeton_daisy', 'daffodil', 'sword_lily', 'poinsettia',
    'bolero_deep_blue', 'wallflower', 'marigold', 'buttercup', 'oxeye_daisy', 'common_dandelion', 'petunia',
    'wild_pansy', 'primula', 'sunflower', 'pelargonium', 'bishop_of_llandaff', 'gaura', 'geranium', 'orange_dahlia',
    'pink-yellow_dahlia', 'cautleya_spicata', 'japanese_anemone', 'black-eyed_susan', 'silverbush',
    'californian_poppy', 'osteospermum', 'spring_crocus', 'bearded_iris', 'windflower', 'tree_poppy', 'gazania',
    'azalea', 'water_lily', 'rose', 'thorn_apple', 'morning_glory', 'passion_flower', 'lotus', 'toad_lily',
    'anthurium', 'frangipani', 'clematis', 'hibiscus', 'columbine', 'desert-rose', 'tree_mallow', 'magnolia',
    'cyclamen_', 'watercress', 'canna_lily', 'hippeastrum_', 'bee_balm', 'ball_moss', 'foxglove', 'bougainvillea',
    'camellia', 'mallow', 'mexican_petunia', 'bromelia', 'blanket_flower', 'trumpet_creeper', 'blackberry_lily'
)
"""The 102 Flowers-102 class names in label order, as the authors hard-code them (``get_inversion.py`` line 179)."""

_SHOWN = 20


def match_categories(categories: Sequence[str], class_names: Sequence[str], family: str, source: str
                     ) -> dict[str, int]:
    """``{authors' category name: index in class_names}`` for every category of a released list.

    Every category must name one class, and every class must have a category: a mismatch
    raises ``ValueError`` listing the names that did not match (``source`` names the list).
    """
    if family == "flower-lt":
        if len(class_names) != len(FLOWER_NAMES):
            raise ValueError(f"{source}: Flower-LT's released names are the {len(FLOWER_NAMES)} Flowers-102 classes "
                             f"in label order, but the dataset has {len(class_names)} classes")
        lookup = {released_name_key(name): index for index, name in enumerate(FLOWER_NAMES)}
        how = "by position in the authors' hard-coded list of Flowers-102 names"
    else:
        lookup = {}
        for index, name in enumerate(class_names):
            if lookup.setdefault(released_name_key(name), index) != index:
                raise ValueError(f"{source}: classes {class_names[lookup[released_name_key(name)]]!r} and {name!r} "
                                 "cannot be told apart once '/' and '_' read as spaces and case is ignored")
        how = "by name, '/' and '_' read as spaces, case ignored"
    matched: dict[str, int] = {}
    unmatched = []
    for category in dict.fromkeys(categories):
        index = lookup.get(released_name_key(category))
        if index is None:
            unmatched.append(category)
        else:
            matched[category] = index
    if unmatched:
        raise ValueError(f"{source}: {len(unmatched)} class name(s) match no class of the dataset ({how}): "
                         f"{_shown(unmatched)}; the dataset's classes are e.g. {_shown(list(class_names), 5)}")
    seen: dict[int, str] = {}
    for category, index in matched.items():
        if index in seen:
            raise ValueError(f"{source}: {seen[index]!r} and {category!r} both name the class {class_names[index]!r}")
        seen[index] = category
    absent = [name for index, name in enumerate(class_names) if index not in seen]
    if absent:
        raise ValueError(f"{source} lists no image of {len(absent)} class(es) of the dataset: {_shown(absent)}")
    return matched


def _shown(names: Sequence[str], limit: int = _SHOWN) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{list(names[:limit])}{more}"
