"""One setting's released files on disk: the archives it needs downloaded, extracted once, its files located.

Downloading is ``huggingface_hub.hf_hub_download``: the Hub cache, a pinnable revision,
resumed partial downloads, progress bars and offline mode (``HF_HUB_OFFLINE=1``: a cached
archive is used, a missing one is an error naming it and how to get it, and nothing
touches the network). A Hub that cannot be reached fails at once, in one line, where
``hf_hub_download`` alone would retry for half a minute (:func:`download_archive`).
Extraction: :mod:`~diffii_datasets.released.archives`. With ``released_from`` the files come
from a local copy instead (:mod:`~diffii_datasets.released.local`) and nothing touches the network.
Torch-free: :func:`fetch_released` is what ``diffii-datasets released`` runs before it reads anything.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from diffii_datasets import _checks
from diffii_datasets._pretrained import HubUnreachableError
from diffii_datasets.settings.base import Setting
from diffii_datasets.released.archives import MAX_EXTRACTED_BYTES, archive_files, extract_archive
from diffii_datasets.released.layout import (
    ARCHIVE_OF_ROLE,
    EXTRACTED,
    PARTS,
    REPO_ID,
    WATERBIRDS_LISTS,
    ReleasedPaths,
    released_paths,
)
from diffii_datasets.released.local import LocalRelease, local_commit
from diffii_datasets.released.locating import locate

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
# Answers after which hf_hub_download would retry for half a minute (huggingface_hub's own list).
_RETRIED_STATUS = (408, 429, 500, 502, 503, 504)


@dataclass(frozen=True)
class ReleasedFiles:
    """Where one setting's released files are: ``files[role]`` for the roles of :data:`~.layout.PARTS` fetched."""

    layout: ReleasedPaths
    commit: str  # the repository commit the archives were downloaded at, or "local:<digest of the files used>"
    archives: dict[str, Path]  # archive name -> the zip read (Hub cache or local), or the local folder it was found in
    files: dict[str, Path]  # role -> the located file
    sources: dict[str, str]  # role -> "<archive>:<path inside it>" or a local path, how messages name the file
    released_from: Path | None = None  # the local copy the files came from; None: the Hub

    @property
    def setting(self) -> str:
        return self.layout.setting

    @property
    def origin(self) -> str:
        """Where the files came from, in words: ``"Luka-Wang/Diff-II at commit <sha>"`` or the local copy."""
        return _origin(self.commit, self.released_from)


def released_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the archives are extracted: ``<cache_dir>/released`` (default: the package cache, like stores)."""
    if cache_dir is None:
        from diffii_datasets.store import default_cache_dir

        cache_dir = default_cache_dir()
    return Path(cache_dir).expanduser() / "released"


def download_archive(filename: str, *, revision: str | None = None, force_download: bool = False,
                     progress: bool = True) -> Path:
    """``filename`` of the released repository, from the Hub cache or downloaded into it; its local path.

    Online, one request without retries comes first: a Hub that cannot be reached (or answers
    with an error ``hf_hub_download`` would retry) gives the cached copy if there is one, else
    an ``OSError`` at once, in one line, naming ``HF_HUB_OFFLINE`` and the ``hf download`` command.
    """
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url
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
    options = dict(repo_type="dataset", revision=revision, tqdm_class=None if progress else silent_tqdm)

    def cached() -> Path | None:
        try:
            return Path(hf_hub_download(REPO_ID, filename, local_files_only=True, **options))
        except LocalEntryNotFoundError:
            return None

    try:
        if constants.is_offline_mode():
            return Path(hf_hub_download(REPO_ID, filename, **options))
        if not force_download and revision is not None and _COMMIT.match(revision) and (path := cached()):
            return path  # a commit never changes: no request
        try:
            get_hf_file_metadata(hf_hub_url(REPO_ID, filename, repo_type="dataset", revision=revision))
        except HfHubHTTPError as error:
            if getattr(getattr(error, "response", None), "status_code", None) not in _RETRIED_STATUS:
                raise
            unreachable: Exception | None = error
        except _transport_errors() as error:
            unreachable = error
        else:
            unreachable = None
        if unreachable is not None:
            if not force_download and (path := cached()):
                logger.warning("could not reach the Hugging Face Hub (%s); using the cached %s", _one_line(unreachable),
                               path)
                return path
            raise HubUnreachableError(
                f"could not get {filename} of the Hugging Face dataset repository {REPO_ID}{at} from "
                f"{constants.ENDPOINT} ({_one_line(unreachable)}), and it is not in the local Hugging Face cache "
                f"({constants.HF_HUB_CACHE}). Download it where the Hub is reachable with {how} and use that cache "
                "here with HF_HUB_OFFLINE=1, or pass the authors' files with released_from (--released-from)"
            ) from unreachable
        return Path(hf_hub_download(REPO_ID, filename, force_download=force_download, **options))
    except LocalEntryNotFoundError as error:
        if constants.is_offline_mode():
            raise HubUnreachableError(f"{filename} of the Hugging Face dataset repository {REPO_ID}{at} is not in "
                                      f"the local Hugging Face cache ({constants.HF_HUB_CACHE}) and downloads are "
                                      f"disabled (HF_HUB_OFFLINE=1). Download it once where the Hub is reachable, e.g. "
                                      f"{how}, or pass the authors' files with released_from (--released-from).") \
                from error
        raise HubUnreachableError(f"could not download {filename} of the Hugging Face dataset repository "
                                  f"{REPO_ID}{at} and it is not in the local cache ({_one_line(error)}); check your "
                                  f"connection, then retry or run {how}") from error
    except RevisionNotFoundError as error:
        raise ValueError(f"revision {revision!r} does not exist in the Hugging Face dataset repository "
                         f"{REPO_ID}") from error
    except (EntryNotFoundError, RepositoryNotFoundError) as error:
        raise FileNotFoundError(f"the Hugging Face dataset repository {REPO_ID}{at} has no {filename} "
                                f"({type(error).__name__})") from error
    except HfHubHTTPError as error:
        raise OSError(f"could not download {filename} of {REPO_ID}{at}: {_one_line(error)}") from error


def _transport_errors() -> tuple[type[BaseException], ...]:
    """A request that got no answer: a socket error, or a transport error of the HTTP client huggingface_hub
    uses (``httpx2`` from its version 2, ``httpx`` before; whichever it imported)."""
    return (OSError, *(sys.modules[name].TransportError for name in ("httpx2", "httpx") if name in sys.modules))


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _origin(commit: str, released_from: Path | None) -> str:
    if released_from is None:
        return f"{REPO_ID} at commit {commit}"
    return f"the local copy {released_from} ({commit})"


def fetch_released(
    setting: str | Setting,
    *,
    parts: Sequence[str] = tuple(PARTS),
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    force_download: bool = False,
    progress: bool = True,
    max_bytes: int = MAX_EXTRACTED_BYTES,
    released_from: str | os.PathLike | None = None,
) -> ReleasedFiles:
    """Download (or take from the Hub cache) the archives ``setting``'s ``parts`` need, extract them, locate the files.

    Args:
        setting: a paper setting (``"cub-5shot"``, ``"flower-lt-if100"``, ...).
        parts: some of ``"concepts"`` (``ft_ti_db.zip``), ``"suffixes"`` (``suffix.zip``),
            ``"subsets"`` (``datasets.zip``, of which only the text lists are extracted).
        revision: a branch, tag or commit of ``Luka-Wang/Diff-II`` (default ``main``); the
            first archive fixes the commit the others are downloaded at.
        cache_dir: the package cache; archives extract under ``<cache_dir>/released/<commit>/``
            (a local zip under ``<cache_dir>/released/local/``).
        force_download: download again even when the Hub cache has the archives (a damaged copy).
        progress: show download and extraction progress bars.
        max_bytes: the most one archive's extraction may write.
        released_from: a local copy of the authors' files instead of the Hub (nothing touches the
            network): the folder where their ``scripts/download.sh`` unzipped the archives (each
            possibly inside a wrapper folder), a folder holding the zips, or one of the zips
            (:mod:`~diffii_datasets.released.local`). ``commit`` is then ``local:<digest of the files used>``.
    """
    layout = released_paths(setting)
    parts = list(_checks.check_str_sequence(parts, "parts", expected=f"a non-empty list of {', '.join(PARTS)}"))
    for part in parts:
        _checks.check_choice(part, "parts", PARTS)
    revision = _checked_revision(revision, force_download, released_from)
    roles = [role for part in PARTS if part in parts for role in PARTS[part]]
    root = released_cache_dir(cache_dir)
    archives: dict[str, Path] = {}
    files: dict[str, Path] = {}
    sources: dict[str, str] = {}
    names = list(dict.fromkeys(ARCHIVE_OF_ROLE[role] for role in roles))
    if released_from is not None:
        local = LocalRelease(released_from, root / "local", progress=progress, max_bytes=max_bytes)
        for name in names:
            wanted = {role: (layout.candidates(role), f"{_PURPOSE[role]} for {layout.setting}")
                      for role in roles if ARCHIVE_OF_ROLE[role] == name}
            archives[name], found, named = local.files_of(name, wanted)
            files.update(found)
            sources.update(named)
        commit = local_commit(files.items())
        logger.info("released files of %s (%s): %s", layout.setting, _origin(commit, local.folder),
                    ", ".join(str(path) for path in files.values()))
        return ReleasedFiles(layout, commit, archives, files, sources, local.folder)
    commit = revision
    for name in names:
        archive = download_archive(name, revision=commit, force_download=force_download, progress=progress)
        if _COMMIT.match(archive.parent.name):
            commit = archive.parent.name  # the snapshot folder: the others come from the same commit
        extracted = _extract(archive, root / (commit or "unknown"), progress, max_bytes)
        archives[name] = archive
        for role in roles:
            if ARCHIVE_OF_ROLE[role] == name:
                files[role] = locate(extracted, layout.candidates(role), purpose=f"{_PURPOSE[role]} for "
                                     f"{layout.setting}", where=f"{name} ({archive})",
                                     listing=lambda: archive_files(archive))
                sources[role] = f"{name}:{files[role].relative_to(extracted).as_posix()}"
    logger.info("released files of %s (%s at %s): %s", layout.setting, REPO_ID, commit,
                ", ".join(str(path) for path in files.values()))
    return ReleasedFiles(layout, commit or "unknown", archives, files, sources)


def _checked_revision(revision: str | None, force_download: bool, released_from: str | os.PathLike | None
                      ) -> str | None:
    if released_from is not None:
        given = [name for name, value in (("revision", revision), ("force_download", force_download)) if value]
        if given:
            raise ValueError(f"{given[0]} applies to the download from the Hub; released_from reads a local copy "
                             f"instead: drop {given[0]}")
    return None if revision is None else _checks.check_str(revision, "revision", expected="a branch, tag or commit")


def _extract(archive: Path, under: Path, progress: bool, max_bytes: int) -> Path:
    selection, select = EXTRACTED.get(archive.name, ("all", None))
    return extract_archive(archive, under / Path(archive.name).stem, select=select, selection=selection,
                           max_bytes=max_bytes, progress=progress)


@dataclass(frozen=True)
class ReleasedWaterbirdsLists:
    """The authors' four Waterbirds test lists on disk, in group order (``test00`` ... ``test11``)."""

    commit: str  # the repository commit datasets.zip was downloaded at, or "local:<digest of the lists>"
    files: tuple[Path, ...]
    sources: tuple[str, ...]  # "<archive>:<path inside it>" or a local path, how messages name each list
    released_from: Path | None = None  # the local copy the lists came from; None: the Hub

    @property
    def origin(self) -> str:
        """Where the lists came from, in words (:attr:`ReleasedFiles.origin`)."""
        return _origin(self.commit, self.released_from)


def fetch_waterbirds_lists(*, revision: str | None = None, cache_dir: str | os.PathLike | None = None,
                           force_download: bool = False, progress: bool = True, max_bytes: int = MAX_EXTRACTED_BYTES,
                           released_from: str | os.PathLike | None = None) -> ReleasedWaterbirdsLists:
    """``datasets.zip``'s Waterbirds lists (:data:`~.layout.WATERBIRDS_LISTS`), downloaded and extracted as
    :func:`fetch_released` does (its text lists only, into the same folder), or from the local copy
    ``released_from``; the arguments are its."""
    revision = _checked_revision(revision, force_download, released_from)
    name = "datasets.zip"
    groups = {f"group {group}": ((path,), f"Waterbirds test list of group {group} ({path})")
              for group, path in enumerate(WATERBIRDS_LISTS)}
    if released_from is not None:
        local = LocalRelease(released_from, released_cache_dir(cache_dir) / "local", progress=progress,
                             max_bytes=max_bytes)
        _, found, named = local.files_of(name, groups)
        return ReleasedWaterbirdsLists(local_commit(found.items()), tuple(found.values()), tuple(named.values()),
                                       local.folder)
    archive = download_archive(name, revision=revision, force_download=force_download, progress=progress)
    commit = archive.parent.name if _COMMIT.match(archive.parent.name) else revision
    extracted = _extract(archive, released_cache_dir(cache_dir) / (commit or "unknown"), progress, max_bytes)
    files = tuple(locate(extracted, candidates, purpose=purpose, where=f"{name} ({archive})",
                         listing=lambda: archive_files(archive)) for candidates, purpose in groups.values())
    return ReleasedWaterbirdsLists(commit or "unknown", files,
                                   tuple(f"{name}:{file.relative_to(extracted).as_posix()}" for file in files))
