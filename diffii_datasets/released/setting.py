"""A paper setting as the authors released it: their concepts, their suffixes, their training and test lists.

The lists are mapped onto the user's copy of the dataset (the root the loaders read), so
the released subset is a :class:`~diffii_datasets.image_datasets.LabeledSubset` like a drawn one,
with this package's class names and labels; the concepts are renumbered in that class order.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffii_datasets.settings.base import Setting, get_setting
from diffii_datasets.released.fetch import ReleasedFiles, fetch_released
from diffii_datasets.released.lists import read_image_list, read_suffix_lines

if TYPE_CHECKING:
    from diffii_datasets.augmented import DiffIIAugmented
    from diffii_datasets.config import DiffIIConfig
    from diffii_datasets.settings.loading import SettingSplits
    from diffii_datasets.diffusion.concepts import ConceptSet
    from diffii_datasets.diffusion.suffixes import UserSuffixes

__all__ = ["ReleasedSetting", "load_released", "released_splits"]


@dataclass(frozen=True)
class ReleasedSetting:
    """What :func:`load_released` returns.

    Attributes:
        setting: the paper setting.
        files: where the released files are (and the repository commit they came from).
        concepts: the released concepts, for the dataset's classes in its order.
        suffixes: the released suffix list, as a suffix provider.
        splits: the released training subset and test list on the user's dataset, and the metaclass.
    """

    setting: Setting
    files: ReleasedFiles
    concepts: ConceptSet
    suffixes: UserSuffixes
    splits: SettingSplits

    @property
    def commit(self) -> str:
        return self.files.commit

    @property
    def origin(self) -> str:
        """Where the files came from, in words: ``"Luka-Wang/Diff-II at commit <sha>"`` or the local copy."""
        return self.files.origin

    def diffii_config(self, **knobs: Any) -> DiffIIConfig:
        """The setting's paper configuration (``Setting.diffii_config``), then ``knobs``; the released suffixes
        replace the config's when a job runs with these artifacts."""
        return self.setting.diffii_config(**knobs)

    def augmented(self, *, config: DiffIIConfig | None = None, **kwargs: Any) -> DiffIIAugmented:
        """``DiffIIAugmented`` over the released subset with the released concepts and suffixes: no concept learning.

        ``config`` defaults to :meth:`diffii_config`; ``kwargs`` are the wrapper's (``cache_dir``,
        ``pipeline``, ``transform``, ...).
        """
        from diffii_datasets.augmented import DiffIIAugmented

        return DiffIIAugmented(self.splits.train, self.splits.metaclass, config=config or self.diffii_config(),
                               released=self, **kwargs)


def load_released(
    setting: str | Setting,
    root: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    force_download: bool = False,
    progress: bool = True,
    transform: Callable | None = None,
    test_transform: Callable | None = None,
    target_transform: Callable | None = None,
    download: bool = False,
    released_from: str | os.PathLike | None = None,
) -> ReleasedSetting:
    """The authors' concepts, suffixes, training subset and test list of ``setting``, on the dataset under ``root``.

    ``revision``, ``cache_dir``, ``force_download``, ``progress`` and ``released_from`` (a local copy of the
    authors' files instead of the Hub) are :func:`~.fetch.fetch_released`'s;
    the transforms and ``download`` are :func:`~diffii_datasets.settings.load_family`'s. Errors name
    the file or image at fault: a released file missing from its archive, a class name that
    matches none of the dataset's, an image listed by the authors that is not under ``root``.
    """
    from diffii_datasets.diffusion.concepts import ConceptSet, import_released_concepts
    from diffii_datasets.diffusion.suffixes import UserSuffixes

    files = fetch_released(setting, revision=revision, cache_dir=cache_dir, force_download=force_download,
                           progress=progress, released_from=released_from)
    splits, categories = _map_lists(files, root, transform, test_transform, target_transform, download)
    names = list(splits.train.classes)
    authors_name = {index: category for category, index in categories.items()}
    imported = import_released_concepts(files.files["embeddings"], files.files["lora"],
                                        [authors_name[index] for index in range(len(names))], splits.metaclass)
    concepts = ConceptSet(names, splits.metaclass, imported.embeddings, imported.lora_state_dict)
    suffixes = UserSuffixes(read_suffix_lines(files.files["suffixes"], splits.metaclass))
    suffixes.path = files.files["suffixes"]
    return ReleasedSetting(get_setting(files.setting), files, concepts, suffixes, splits)


def released_splits(
    setting: str | Setting,
    root: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    force_download: bool = False,
    progress: bool = True,
    transform: Callable | None = None,
    test_transform: Callable | None = None,
    target_transform: Callable | None = None,
    download: bool = False,
    released_from: str | os.PathLike | None = None,
) -> SettingSplits:
    """The authors' training subset and test list of ``setting`` on the dataset under ``root`` (``datasets.zip`` only).

    What ``load_setting(setting, root, subset="released")`` returns; the arguments are :func:`load_released`'s.
    """
    files = fetch_released(setting, parts=("subsets",), revision=revision, cache_dir=cache_dir,
                           force_download=force_download, progress=progress, released_from=released_from)
    return _map_lists(files, root, transform, test_transform, target_transform, download)[0]


def _map_lists(files: ReleasedFiles, root: str | os.PathLike, transform: Callable | None,
               test_transform: Callable | None, target_transform: Callable | None, download: bool
               ) -> tuple[SettingSplits, dict[str, int]]:
    """The released lists as splits of the dataset under ``root``, and ``{authors' class name: class index}``."""
    from diffii_datasets.base_dataset import class_names
    from diffii_datasets.image_datasets.listed import listed_subset
    from diffii_datasets.settings.loading import SettingSplits, load_family_pools
    from diffii_datasets.released.names import match_categories

    setting = get_setting(files.setting)
    train_pool, test_split = load_family_pools(setting.family, root, transform=transform, test_transform=transform,
                                               target_transform=target_transform, download=download)
    test_pool, train_split = load_family_pools(setting.family, root, transform=test_transform,
                                               test_transform=test_transform, target_transform=target_transform)[::-1]
    names = class_names(train_pool)
    where = f"{Path(root).expanduser()} ({setting.train_split} and {setting.test_split})"
    subsets, categories = [], {}
    for role, parts in (("train_list", [train_pool, test_split]), ("test_list", [test_pool, train_split])):
        listed = read_image_list(files.files[role])
        source = files.sources[role]
        matched = match_categories([image.category for image in listed], names, setting.family, source)
        categories.update(matched)
        wanted = [(matched[image.category], image.file, image.path) for image in listed]
        subsets.append(listed_subset(parts, wanted, source=source, where=where))
    return SettingSplits(subsets[0], setting.metaclass, subsets[1]), categories
