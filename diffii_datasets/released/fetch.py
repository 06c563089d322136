"""One setting's released files on disk: the archives it needs downloaded, extracted once, its files located.

Downloading is ``huggingface_hub.hf_hub_download``: the Hub cache, a pinnable revision,
resumed partial downloads, progress bars and offline mode (``HF_HUB_OFFLINE=1``: a cached
archive is used, a missing one is an error naming it and how to get it, and nothing
touches the network). Extraction: :mod:`~diffii_datasets.released.archives`.
Torch-free: :func:`fetch_released` is what ``diffii-datasets released`` runs before it reads anything.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from diffii_datasets import _checks
from diffii_datasets.settings.base import Setting
from diffii_datasets.released.archives import MAX_EXTRACTED_BYTES, extract_archive, locate
from diffii_datasets.released.layout import (
    ARCHIVE_OF_ROLE,
    PARTS,
    REPO_ID,
    WATERBIRDS_LISTS,
    ReleasedPaths,
    released_paths,
)

__all__ = ["ReleasedFiles", "ReleasedWaterbirdsLists", "download_archive", "fetch_released", "fetch_waterbirds_lists",
           "released_cache_dir"]

logger = logging.getLogger(__name__)

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_PURPOSE = {
    "embeddings": "concept token embeddings",
    "lora": "concept LoRA weights",
    "suffixes": "suffix list",
    "train_list": "training list",
    "test_list": "test list",
}
# datasets.zip also holds the subsets' images; only its lists are read (the images come from the user's root).
_SELECTIONS = {"datasets.zip": ("lists", lambda name: name.endswith(".txt"))}


@dataclass(frozen=True)
class ReleasedFiles:
    """Where one setting's released files are: ``files[role]`` for the roles of :data:`~.layout.PARTS` fetched."""

    layout: ReleasedPaths
    commit: str  # the repository commit the archives were downloaded at
    archives: dict[str, Path]  # archive name -> the downloaded zip in the Hub cache
    files: dict[str, Path]  # role -> the located file
    sources: dict[str, str]  # role -> "<archive>:<path inside it>", how messages name the file

    @property
    def setting(self) -> str:
        return self.layout.setting


def released_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the archives are extracted: ``<cache_dir>/released`` (default: the package cache, like stores)."""
    if cache_dir is None:
        from diffii_datasets.store import default_cache_dir

        cache_dir = default_cache_dir()
    return Path(cache_dir).expanduser() / "released"


def download_archive(filename: str, *, revision: str | None = None, force_download: bool = False,
                     progress: bool = True) -> Path:
    """``filename`` of the released repository, from the Hub cache or downloaded into it; its local path."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.utils import silent_tqdm

    at = f" at revision {revision!r}" if revision else ""
    how = (f"`hf download {REPO_ID} {filename} --repo-type dataset"
           f"{f' --revision {revision}' if revision else ''}`")
    try:
        return Path(hf_hub_download(REPO_ID, filename, repo_type="dataset", revision=revision,
                                    force_download=force_download, tqdm_class=None if progress else silent_tqdm))
    except LocalEntryNotFoundError as error:
        if constants.is_offline_mode():
            raise OSError(f"{filename} of the Hugging Face dataset repository {REPO_ID}{at} is not in the local "
                          f"Hugging Face cache ({constants.HF_HUB_CACHE}) and downloads are disabled "
                          f"(HF_HUB_OFFLINE=1). Download it once where the Hub is reachable, e.g. {how}.") from error
        raise OSError(f"could not download {filename} of the Hugging Face dataset repository {REPO_ID}{at} and it "
                      f"is not in the local cache ({error}); check your connection, then retry or run {how}") from error
    except RevisionNotFoundError as error:
        raise ValueError(f"revision {revision!r} does not exist in the Hugging Face dataset repository "
                         f"{REPO_ID}") from error
    except (EntryNotFoundError, RepositoryNotFoundError) as error:
        raise FileNotFoundError(f"the Hugging Face dataset repository {REPO_ID}{at} has no {filename} "
                                f"({type(error).__name__})") from error
    except HfHubHTTPError as error:
        raise OSError(f"could not download {filename} of {REPO_ID}{at}: {error}") from error


def fetch_released(
    setting: str | Setting,
    *,
    parts: Sequence[str] = tuple(PARTS),
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    force_download: bool = False,
    progress: bool = True,
    max_bytes: int = MAX_EXTRACTED_BYTES,
) -> ReleasedFiles:
    """Download (or take from the Hub cache) the archives ``setting``'s ``parts`` need, extract them, locate the files.

    Args:
        setting: a paper setting (``"cub-5shot"``, ``"flower-lt-if100"``, ...).
        parts: some of ``"concepts"`` (``ft_ti_db.zip``), ``"suffixes"`` (``suffix.zip``),
            ``"subsets"`` (``datasets.zip``, of which only the text lists are extracted).
        revision: a branch, tag or commit of ``Luka-Wang/Diff-II`` (default ``main``); the
            first archive fixes the commit the others are downloaded at.
        cache_dir: the package cache; archives extract under ``<cache_dir>/released/<commit>/``.
        force_download: download again even when the Hub cache has the archives (a damaged copy).
        progress: show download and extraction progress bars.
        max_bytes: the most one archive's extraction may write.
    """
    layout = released_paths(setting)
    parts = list(_checks.check_str_sequence(parts, "parts", expected=f"a non-empty list of {', '.join(PARTS)}"))
    for part in parts:
        _checks.check_choice(part, "parts", PARTS)
    revision = None if revision is None else _checks.check_str(revision, "revision", expected="a branch, tag or commit")
    roles = [role for part in PARTS if part in parts for role in PARTS[part]]
    root = released_cache_dir(cache_dir)
    archives: dict[str, Path] = {}
    files: dict[str, Path] = {}
    sources: dict[str, str] = {}
    commit = revision
    for name in dict.fromkeys(ARCHIVE_OF_ROLE[role] for role in roles):
        archive = download_archive(name, revision=commit, force_download=force_download, progress=progress)
        if _COMMIT.match(archive.parent.name):
            commit = archive.parent.name  # the snapshot folder: the others come from the same commit
        selection, select = _SELECTIONS.get(name, ("all", None))
        extracted = extract_archive(archive, root / (commit or "unknown") / Path(name).stem, select=select,
                                    selection=selection, max_bytes=max_bytes, progress=progress)
        archives[name] = archive
        for role in roles:
            if ARCHIVE_OF_ROLE[role] == name:
                files[role] = locate(extracted, layout.files[role], archive, f"{_PURPOSE[role]} for {layout.setting}")
                sources[role] = f"{name}:{files[role].relative_to(extracted).as_posix()}"
    logger.info("released files of %s (%s at %s): %s", layout.setting, REPO_ID, commit,
                ", ".join(str(path) for path in files.values()))
    return ReleasedFiles(layout, commit or "unknown", archives, files, sources)


@dataclass(frozen=True)
class ReleasedWaterbirdsLists:
    """The authors' four Waterbirds test lists on disk, in group order (``test00`` ... ``test11``)."""

    commit: str  # the repository commit datasets.zip was downloaded at
    files: tuple[Path, ...]
    sources: tuple[str, ...]  # "<archive>:<path inside it>", how messages name each list


def fetch_waterbirds_lists(*, revision: str | None = None, cache_dir: str | os.PathLike | None = None,
                           force_download: bool = False, progress: bool = True,
                           max_bytes: int = MAX_EXTRACTED_BYTES) -> ReleasedWaterbirdsLists:
    """``datasets.zip``'s Waterbirds lists (:data:`~.layout.WATERBIRDS_LISTS`), downloaded and extracted as
    :func:`fetch_released` does (its text lists only, into the same folder); the arguments are its."""
    revision = None if revision is None else _checks.check_str(revision, "revision", expected="a branch, tag or commit")
    name = "datasets.zip"
    archive = download_archive(name, revision=revision, force_download=force_download, progress=progress)
    commit = archive.parent.name if _COMMIT.match(archive.parent.name) else revision
    selection, select = _SELECTIONS[name]
    extracted = extract_archive(archive, released_cache_dir(cache_dir) / (commit or "unknown") / Path(name).stem,
                                select=select, selection=selection, max_bytes=max_bytes, progress=progress)
    files = tuple(locate(extracted, path, archive, f"Waterbirds test list of group {group} ({path})")
                  for group, path in enumerate(WATERBIRDS_LISTS))
    return ReleasedWaterbirdsLists(commit or "unknown", files,
                                   tuple(f"{name}:{file.relative_to(extracted).as_posix()}" for file in files))
