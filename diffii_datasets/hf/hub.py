"""Publishing: the folder a Hub push uploads, written locally or pushed, and reading it back.

A published set is a plain Parquet dataset repository, the layout ``datasets``
itself pushes::

    README.md                                   card; its YAML declares every config
    data/cub-5shot/train-00000-of-00001.parquet
    data/cub-5shot/synthetic-00000-of-00001.parquet
    data/cub-5shot/test-00000-of-00001.parquet
    data/cub-10shot/...

so ``datasets.load_dataset(repo_or_folder, "cub-5shot")`` loads it without any code
from this package. Each config lives in its own ``data/<config>/`` folder and the
README's ``configs``, ``dataset_info`` and ``diffii`` entries are merged by config
name, so pushing (or exporting) one config leaves the others untouched.

:func:`export_to_folder` writes the new folder beside the target and swaps it in at the
end, so a killed export leaves the old folder as it was (or no folder), never a part of
one. :func:`push_to_hub` exports into a temporary folder (starting from the repository's
current README) and uploads exactly that folder; the token comes from ``token=`` or
Hugging Face's usual sources (``HF_TOKEN``, ``hf auth login``) and is never logged.
:func:`preview_push` writes that folder without a network or a token, to check a push.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import datasets
from huggingface_hub import DatasetCard, DatasetCardData, HfApi
from huggingface_hub.errors import EntryNotFoundError

from diffii_datasets._io import atomic_write
from diffii_datasets._warnings import warn_at_caller
from diffii_datasets.settings.base import FAMILIES, Setting, list_settings
from diffii_datasets.hf.cards import GENERIC_CARD, render_card, resolve_card
from diffii_datasets.hf.convert import checked_store_dataset_dict, open_store
from diffii_datasets.hf.features import portable_arrow_schema
from diffii_datasets.hf.folder_swap import staging_copy, swap_in, sweep_leftovers
from diffii_datasets.hf.names import check_config_name, check_repo_id
from diffii_datasets.store import SyntheticStore

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_SHARD_SIZE",
    "check_config_name",
    "check_repo_id",
    "export_to_folder",
    "prebuilt_files",
    "preview_push",
    "push_to_hub",
]

DEFAULT_MAX_SHARD_SIZE = 500 * 1024 * 1024  # bytes of Arrow data per Parquet shard, as datasets' push
ROWS_PER_ROW_GROUP = 100  # datasets' row group size for image sets: a reader fetches 100 images at a time
CITATION = """@inproceedings{wang2025diffii,
  title     = {Inversion Circle Interpolation: Diffusion-based Image Augmentation for Data-scarce Classification},
  author    = {Wang, Yanghao and Chen, Long},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2025}
}"""


def _paper_setting(config_name: str) -> Setting | None:
    """The paper setting a config is named after, or ``None`` for another name."""
    return next((setting for setting in list_settings() if setting.name == config_name), None)


def _card_template(card: str | os.PathLike | None, setting: Setting | None) -> tuple[Path, str]:
    """The template and family of a config: the setting's family, a named card, or a custom template's stem.

    A paper setting gets its family's card (stating that source's licence); another
    config name gets the generic card, which claims no licence, unless ``card`` names one.
    """
    template = resolve_card(card, setting.family if setting else None)
    named = isinstance(card, str) and (card in FAMILIES or card == GENERIC_CARD)
    if named:
        family = card
    elif setting is not None:
        family = setting.family
    else:
        family = template.stem
    if setting is not None and family != setting.family:
        raise ValueError(f"card {card!r} is for the {family!r} family, but config {setting.name!r} belongs to "
                         f"{setting.family!r}; leave card=None to use that family's template")
    return template, family


def _check_store_fits_setting(store: SyntheticStore, setting: Setting) -> None:
    """Refuse publishing a store under a paper setting it cannot be; warn on a class count that differs."""
    header = store.header
    if header.metaclass != setting.metaclass:
        raise ValueError(f"config_name {setting.name!r} is a {setting.metaclass!r} setting, but the store was "
                         f"made for metaclass {header.metaclass!r}; pick a matching config name")
    if setting.shots is not None and max(header.real_counts) > setting.shots:
        raise ValueError(f"config_name {setting.name!r} allows at most {setting.shots} real images per class, but "
                         f"the store has classes with {max(header.real_counts)}")
    if header.num_classes != setting.num_classes:
        warn_at_caller(f"config_name {setting.name!r}: the paper's {setting.name} has {setting.num_classes} classes, "
                       f"this store {header.num_classes}; the card will describe it as {setting.name} (pass another "
                       "config_name, with card=, if it is not)")


def _generation_record(store: SyntheticStore, config_name: str, family: str, setting: Setting | None,
                       rows: dict[str, int]) -> dict[str, Any]:
    """What the card says about one config: where its images come from and how they were made."""
    header, manifest = store.header, store.manifest()
    record = {
        "config_name": config_name,
        "family": family,
        "metaclass": header.metaclass,
        "num_classes": header.num_classes,
        "num_rows": rows,
        "real_per_class": {"min": min(header.real_counts), "max": max(header.real_counts)},
        "model": header.model,
        "concepts": header.concepts,
        "real_subset_fingerprint": header.dataset,
        "method": header.method,
        "generation": header.config.to_dict(),
        "versions": manifest.get("versions", {}),
    }
    if setting is not None:
        record["setting"] = {"name": setting.name, "family": setting.family, "train_split": setting.train_split,
                             "test_split": setting.test_split, "shots": setting.shots,
                             "imbalance_factor": setting.imbalance_factor}
    return record


def _size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return name
    return "1M<n<10M"


def _existing_card_data(readme: Path, family: str) -> DatasetCardData:
    if not readme.is_file():
        return DatasetCardData()
    data = DatasetCard.load(readme).data
    other = sorted({entry["family"] for entry in data.get("diffii") or [] if entry.get("family") not in (None, family)})
    if other:
        raise ValueError(f"{readme} already holds configs of the dataset family {other[0]!r}; a repository holds one "
                         f"family (its card states one source dataset and licence): use another repository for "
                         f"{family!r}")
    return data


def _write_parquet(dataset: datasets.Dataset, path: Path) -> None:
    """``dataset`` as one Parquet file whose features metadata every ``datasets`` version reads.

    Not ``Dataset.to_parquet``: from ``datasets`` 4 on it records list columns in a
    form 2.x and 3.x refuse (see :func:`~diffii_datasets.hf.features.portable_arrow_schema`).
    Row groups of :data:`ROWS_PER_ROW_GROUP` images as ``datasets`` writes image sets,
    and its content-defined chunks (deduplicated by the Hub on a re-upload) where it has them.
    """
    import pyarrow.parquet as pq

    options: dict[str, Any] = {}
    chunking = getattr(datasets.config, "DEFAULT_CDC_OPTIONS", None)
    if chunking is not None:
        options = {"use_content_defined_chunking": chunking, "write_page_index": True}
    rows = dataset.with_format("arrow")
    with pq.ParquetWriter(str(path), portable_arrow_schema(dataset.features), **options) as writer:
        for start in range(0, len(dataset), ROWS_PER_ROW_GROUP):
            writer.write_table(rows[start:start + ROWS_PER_ROW_GROUP])
    with open(path, "rb") as handle:  # on disk before the export is swapped in
        os.fsync(handle.fileno())


def _write_shards(dataset: datasets.Dataset, directory: Path, split: str, max_shard_size: int) -> list[Path]:
    num_shards = int(dataset.data.nbytes / max_shard_size) + 1
    paths = []
    for index in range(num_shards):
        path = directory / f"{split}-{index:05d}-of-{num_shards:05d}.parquet"
        _write_parquet(dataset.shard(num_shards=num_shards, index=index, contiguous=True), path)
        paths.append(path)
    return paths


def export_to_folder(
    source: Any,
    folder: str | os.PathLike,
    config_name: str,
    *,
    test_dataset: Any = None,
    card: str | os.PathLike | None = None,
    repo_id: str | None = None,
    max_shard_size: int = DEFAULT_MAX_SHARD_SIZE,
    cache_dir: str | os.PathLike | None = None,
) -> list[Path]:
    """Write exactly what a push of ``config_name`` uploads into ``folder``; return the files written.

    Writes ``data/<config_name>/<split>-NNNNN-of-NNNNN.parquet`` (replacing that config's
    old shards) and ``README.md``: the card rendered from ``card`` (default: the
    template of the setting's family in ``hub_cards/``, the generic one for another
    name) whose YAML merges the configs
    already declared in ``folder/README.md`` with this one, so several configs
    exported into one folder all load with ``datasets.load_dataset(folder, name)``.

    Atomic: the new folder (the old one's other files hard-linked, or copied, into it) is
    written beside ``folder`` as ``.<name>.export-<pid>`` and swapped in at the end (one
    ``renameat2`` exchange on Linux, two renames elsewhere), so a killed export leaves the
    old folder whole; its leftovers are removed by the next export into ``folder``. So
    ``folder`` may not hold the current directory.

    Args:
        source: a complete store (see :func:`~diffii_datasets.hf.open_store`); an
            incomplete one is refused with the classes still missing.
        folder: the export folder (created if needed).
        config_name: the configuration name, normally one of the paper's settings
            (``cub-5shot`` ...); another name gets the generic card (no source
            dataset, no licence claimed) unless ``card`` is given.
        test_dataset: the real test split to include (``(image, label)`` items).
        card: a family name (``cub``, ``aircraft``, ``cars``, ``pet``, ``cub-lt``,
            ``flower-lt``), ``"generic"`` or the path of a card template.
        repo_id: the repository the card's loading example names (``namespace/name``).
        max_shard_size: Arrow bytes per Parquet shard.
        cache_dir: ``datasets``' cache for the intermediate Arrow files (default: a
            temporary folder, removed when the export is written).
    """
    config_name = check_config_name(config_name)
    if repo_id is not None:
        check_repo_id(repo_id)
    if not isinstance(max_shard_size, int) or max_shard_size <= 0:
        raise ValueError(f"max_shard_size must be a positive number of bytes, got {max_shard_size!r}")
    setting = _paper_setting(config_name)
    template, family = _card_template(card, setting)
    store = open_store(source)
    if setting is not None:
        _check_store_fits_setting(store, setting)
    folder = Path(folder).expanduser().resolve()
    if folder == Path.cwd() or folder in Path.cwd().parents:
        raise ValueError(f"folder {str(folder)!r} holds the current directory: an export replaces the whole folder "
                         "when it is written, so pass a folder outside it (e.g. ../<name> after cd ..)")
    sweep_leftovers(folder)
    staging = staging_copy(folder, leave_out=Path("data") / config_name)
    try:
        written = _export(store, staging, config_name, setting, template, family, test_dataset, repo_id,
                          max_shard_size, cache_dir)
        swap_in(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [folder / path.relative_to(staging) for path in written]


def _export(store: SyntheticStore, folder: Path, config_name: str, setting: Setting | None, template: Path,
            family: str, test_dataset: Any, repo_id: str | None, max_shard_size: int,
            cache_dir: str | os.PathLike | None) -> list[Path]:
    """:func:`export_to_folder` once its arguments are checked and the store is verified."""
    folder.mkdir(parents=True, exist_ok=True)
    card_data = _existing_card_data(folder / "README.md", family)

    with tempfile.TemporaryDirectory(prefix="diffii-export-") as scratch:
        # Without a cache_dir, the intermediate Arrow files go to a scratch folder, not datasets' cache.
        splits = checked_store_dataset_dict(store, test_dataset,
                                            cache_dir=cache_dir if cache_dir is not None else scratch)
        data_dir = folder / "data" / config_name
        if data_dir.exists():
            shutil.rmtree(data_dir)
        data_dir.mkdir(parents=True)
        written: list[Path] = []
        split_infos = datasets.SplitDict()
        for split, dataset in splits.items():
            written += _write_shards(dataset, data_dir, split, max_shard_size)
            split_infos.add(datasets.SplitInfo(name=split, num_bytes=dataset.data.nbytes, num_examples=len(dataset)))
        features = splits["train"].features
        rows = {split: len(dataset) for split, dataset in splits.items()}
        dataset_size = sum(dataset.data.nbytes for dataset in splits.values())
        del splits, dataset  # release the memory-mapped Arrow files before the scratch folder goes

    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs

    data_files = [{"split": split, "path": f"data/{config_name}/{split}-*"} for split in rows]
    MetadataConfigs({config_name: {"data_files": data_files}}).to_dataset_card_data(card_data)
    info = datasets.DatasetInfo(features=features, splits=split_infos,
                                download_size=sum(path.stat().st_size for path in written), dataset_size=dataset_size)
    DatasetInfosDict({config_name: info}).to_dataset_card_data(card_data)
    records = {entry["config_name"]: entry for entry in card_data.get("diffii") or []}
    records[config_name] = _generation_record(store, config_name, family, setting, rows)
    card_data["diffii"] = [records[name] for name in sorted(records)]
    card_data["size_categories"] = _size_category(max(sum(r["num_rows"].values()) for r in records.values()))

    context = {
        "configs": card_data["diffii"],
        "repo_id": repo_id or "<namespace>/<name>",
        "citation": CITATION,
    }
    rendered = render_card(template, card_data, context)
    readme = folder / "README.md"
    atomic_write(readme, str(rendered).encode("utf-8"))  # a new file: never through a hard link of the old one
    logger.info("exported config %s (%s) to %s", config_name, ", ".join(f"{k}: {v}" for k, v in rows.items()), folder)
    return written + [readme]


def prebuilt_files(folder: str | os.PathLike, config_name: str) -> dict[str, list[Path]]:
    """The Parquet files of each split of ``config_name`` in an exported (or downloaded) folder, from its README."""
    folder = Path(folder)
    readme = folder / "README.md"
    if not readme.is_file():
        raise FileNotFoundError(f"{folder} has no README.md: it is not a folder written by export_to_folder "
                                "or downloaded from a Diff-II dataset repository")
    configs = DatasetCard.load(readme).data.get("configs") or []
    entry = next((c for c in configs if c.get("config_name") == config_name), None)
    if entry is None:
        present = ", ".join(str(c.get("config_name")) for c in configs) or "none"
        raise ValueError(f"config {config_name!r} is not in {readme}; configs there: {present}")
    files: dict[str, list[Path]] = {}
    root = folder.resolve()
    for item in entry.get("data_files") or []:
        if not isinstance(item, dict) or "split" not in item:
            raise ValueError(f"{readme}: config {config_name!r} must list data_files per split, got {item!r}")
        patterns = [item["path"]] if isinstance(item["path"], str) else list(item["path"])
        paths = sorted({path.resolve() for pattern in patterns for path in folder.glob(pattern)})
        outside = [p for p in paths if root not in p.parents]
        if outside or not paths:
            raise ValueError(f"{readme}: split {item['split']!r} of {config_name!r} matches "
                             f"{'files outside the folder' if outside else 'no file'} ({patterns})")
        files[item["split"]] = paths
    return files


def _download_readme(api: HfApi, repo_id: str, revision: str, folder: Path) -> bool:
    """Copy the repository's README.md at ``revision`` into ``folder``; False when it has none."""
    try:
        path = api.hf_hub_download(repo_id, "README.md", repo_type="dataset", revision=revision)
    except EntryNotFoundError:
        return False
    shutil.copyfile(path, folder / "README.md")
    return True


def push_to_hub(
    source: Any,
    repo_id: str,
    config_name: str,
    *,
    private: bool = False,
    token: str | None = None,
    test_dataset: Any = None,
    card: str | os.PathLike | None = None,
    commit_message: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> str:
    """Publish ``config_name`` of a complete store to the dataset repository ``repo_id``; return the commit URL.

    Creates the repository if needed (``private`` applies only then), exports into a
    temporary folder that starts from the repository's current README (see
    :func:`export_to_folder`), and uploads that folder in one commit: this config's
    shards, replacing its old ones, and the merged README. Other configs are not
    touched. The commit is made on top of the revision whose README was merged, so a
    concurrent push to the same repository fails instead of dropping a config.

    ``token``: a Hugging Face token; default: ``HF_TOKEN`` or the token saved by
    ``hf auth login``. It is never printed or logged.
    """
    from huggingface_hub import get_token

    if not isinstance(private, bool):
        raise TypeError(f"private must be a bool, got {type(private).__name__}")
    if token is not None and (not isinstance(token, str) or not token):
        raise TypeError("token must be a non-empty string or None (None: HF_TOKEN or `hf auth login`)")
    store, setting, template, family = _checked_push(source, repo_id, config_name, card)  # before any network call
    if token is None and get_token() is None:
        raise RuntimeError("no Hugging Face token found: pass token= (--token on the command line), "
                           "set HF_TOKEN, or run `hf auth login`")

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    parent = api.repo_info(repo_id, repo_type="dataset").sha
    with tempfile.TemporaryDirectory(prefix="diffii-push-") as tmp:
        folder = Path(tmp)
        had_readme = _download_readme(api, repo_id, parent, folder)
        files = _export(store, folder, config_name, setting, template, family, test_dataset, repo_id,
                        DEFAULT_MAX_SHARD_SIZE, cache_dir)
        logger.info("uploading %d files to %s (%s README)", len(files), repo_id, "merged" if had_readme else "new")
        commit = api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=folder,
            commit_message=commit_message or f"Add Diff-II config {config_name}",
            allow_patterns=["README.md", f"data/{config_name}/*"],
            delete_patterns=[f"data/{config_name}/*"],
            parent_commit=parent,
        )
    return commit.commit_url


def _checked_push(source: Any, repo_id: str, config_name: str, card: str | os.PathLike | None
                  ) -> tuple[SyntheticStore, Setting | None, Path, str]:
    """What a push checks before any network call: the names, the store (complete, fitting the config), the card."""
    check_repo_id(repo_id)
    check_config_name(config_name)
    store = open_store(source)
    setting = _paper_setting(config_name)
    template, family = _card_template(card, setting)
    if setting is not None:
        _check_store_fits_setting(store, setting)
    return store, setting, template, family


def preview_push(
    source: Any,
    repo_id: str,
    config_name: str,
    folder: str | os.PathLike,
    *,
    test_dataset: Any = None,
    card: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> list[Path]:
    """Write into ``folder`` what :func:`push_to_hub` would upload, with no network and no token; return the files.

    The same checks as a push, the same files: this config's shards and the card
    (``README.md``), which names ``repo_id`` in its loading example. One difference: a
    push merges the repository's current README (its other configs) into the card, which
    needs the network; here the card starts from none. ``folder`` must be new or empty.
    """
    store, setting, template, family = _checked_push(source, repo_id, config_name, card)
    folder = Path(folder).expanduser()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ValueError(f"folder {str(folder)!r} must be new or empty: it receives exactly what a push uploads")
    return _export(store, folder, config_name, setting, template, family, test_dataset, repo_id,
                   DEFAULT_MAX_SHARD_SIZE, cache_dir)
