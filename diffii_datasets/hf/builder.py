"""``DiffIIBuilder``: the paper's settings as a ``datasets`` builder, generated locally or downloaded prebuilt.

``datasets`` 4+ runs no loading scripts, so the builder is a class this package ships::

    builder = DiffIIBuilder(config_name="cub-5shot", data_dir="/data")   # raw CUB_200_2011/ under /data
    builder.download_and_prepare()
    ds = builder.as_dataset()          # DatasetDict: train (real), synthetic, test

    DiffIIBuilder(config_name="cub-5shot", source="someone/diffii-cub")   # or a local export folder
    DiffIIBuilder(config_name="cub-5shot", data_dir="/data", released=True)  # the authors' concepts and subset

Generating builds its job with :func:`~diffii_datasets.job.build_job` and runs
:func:`~diffii_datasets.prepare.prepare`, the one preparation path, with its resumable
store (under ``diffii_cache_dir``); downloading reads
the Parquet layout :func:`~diffii_datasets.hf.export_to_folder` writes and checks its
features. :func:`load` does the three steps at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets
from huggingface_hub import snapshot_download

from diffii_datasets import _checks
from diffii_datasets.methods.config import MethodConfig
from diffii_datasets.settings.base import Setting, get_setting, list_settings
from diffii_datasets.hf.convert import real_examples, synthetic_examples, test_examples
from diffii_datasets.hf.features import SPLITS, check_features, diffii_features
from diffii_datasets.hf.hub import CITATION, check_repo_id, prebuilt_files
from diffii_datasets.store import SyntheticStore, default_cache_dir

if TYPE_CHECKING:
    from diffii_datasets.settings.loading import SettingSplits
    from diffii_datasets.job import PreparationJob

logger = logging.getLogger(__name__)

__all__ = ["DiffIIBuilder", "DiffIIBuilderConfig", "load"]


def _generation_knobs() -> list[str]:
    """Every knob of the methods' configs is a builder keyword (each method takes its own); ``seed`` is the builder
    config's own field (it also draws the real subset)."""
    from diffii_datasets.methods import all_knobs

    return [item.name for item in all_knobs() if item.name != "seed"]


@dataclasses.dataclass
class DiffIIBuilderConfig(datasets.BuilderConfig):
    """One paper setting (``name``), with where its data comes from, the method and its knobs.

    Attributes:
        data_dir: the raw data root, in torchvision's layout (``CUB_200_2011/`` ...),
            to generate from.
        source: instead of generating, a Hub dataset repository id (``namespace/name``)
            or a local folder in the layout :func:`~diffii_datasets.hf.export_to_folder` writes.
        revision: the Hub revision of ``source``, or of the authors' released artifacts.
        seed: draws the real subset and seeds generation (the method config's ``seed``).
        method: how the synthetic images are made (a name of :func:`~diffii_datasets.methods.list_methods`;
            default Diff-II).
        diffii: the method's knobs that differ from its defaults for the setting (its config's fields).
        concepts: identity of ready-made class concepts (set by the builder from ``concepts=``).
        released: the commit of the authors' released artifacts used (set by the builder from
            ``released=True``): their concepts, suffixes and training subset, no concept learning.
        include_test: also build the ``test`` split from the raw data.
        source_fingerprint: what ``source`` held when the builder was made (set by the
            builder), so a changed source never reuses a stale ``datasets`` cache.
    """

    source: str | None = None
    revision: str | None = None
    seed: int = 0
    method: str = "diff-ii"
    diffii: dict[str, Any] | None = None
    concepts: str | None = None
    released: str | None = None
    include_test: bool = True
    source_fingerprint: str | None = None

    def setting(self) -> Setting:
        return get_setting(self.name)

    def method_config(self) -> MethodConfig:
        """The method's whole config: its published defaults, the setting's own knobs it declares
        (:meth:`~diffii_datasets.settings.base.Setting.method_config`), then ``diffii``."""
        return self.setting().method_config(self.method, **(self.diffii or {}), seed=self.seed)

    def diffii_config(self) -> MethodConfig:
        """Deprecated spelling of :meth:`method_config` (the builder makes any method's images now)."""
        from diffii_datasets._deprecated import warn_renamed

        warn_renamed("DiffIIBuilderConfig.diffii_config", "DiffIIBuilderConfig.method_config")
        return self.method_config()


class DiffIIBuilder(datasets.GeneratorBasedBuilder):
    """The paper's settings (``cub-5shot`` ... ``flower-lt-if10``) as Hugging Face datasets.

    Splits: ``train`` (the real subset), ``synthetic`` (the method's images, Diff-II's by default, with provenance)
    and ``test`` (the real evaluation split); features: :func:`~diffii_datasets.hf.diffii_features`.

    Args:
        config_name: one of the settings of :func:`~diffii_datasets.settings.list_settings`.
        pipeline: a ready ``StableDiffusionPipeline`` (default: ``model`` is loaded when
            something must be generated).
        concepts: ready-made class concepts (:class:`~diffii_datasets.diffusion.ConceptSet`).
        released: use the authors' released concepts, suffixes, training subset and test list of
            the setting (:func:`diffii_datasets.released.load_released`, at ``revision``) on the
            raw data of ``data_dir``: nothing is learned.
        diffii_config: a complete method config (a :class:`~diffii_datasets.DiffIIConfig`, or a
            baseline's) to start from instead of the method's defaults for the setting; it names the method.
        diffii_cache_dir: where the synthetic store lives (default: the wrapper's cache).
        device: where a pipeline loaded from ``model`` runs.
        progress: show progress bars while generating.
        download: download a missing raw dataset under ``data_dir`` where torchvision can
            (what a "Dataset not found ... download=True" error asks for).
        **kwargs: the fields of :class:`DiffIIBuilderConfig`: ``data_dir`` (the raw data root to
            generate from), ``source`` (a Hub repository id or a local export folder to load a
            prebuilt set from instead; then no generation knob may be passed), ``seed`` (draws the
            real subset and seeds generation, default 0), ``method`` (a name of
            :func:`~diffii_datasets.methods.list_methods`, default ``"diff-ii"``) ...; any knob of that method's
            config (``model``, ``expansion_rate``, ``split_ratio``, ``strengths`` ...); and
            ``datasets.DatasetBuilder``'s own arguments (``cache_dir``, ``revision``, ``token`` ...).

    The ``datasets`` cache is keyed by these arguments: after changing the raw files
    under the same ``data_dir``, pass ``download_mode="force_redownload"``.
    """

    BUILDER_CONFIG_CLASS = DiffIIBuilderConfig
    # The version is part of the ``datasets`` cache path, whose key holds only the knobs given: it changes
    # whenever the defaults do, so a set made with old defaults is never reused (1.1.0: the published
    # concept recipe; 1.2.0: its seed 42 and epoch order, the family's suffix list, the method).
    BUILDER_CONFIGS = [
        DiffIIBuilderConfig(name=setting.name, version=datasets.Version("1.2.0"),
                            description=f"{setting.name}: {setting.train_split}, Diff-II synthetic images")
        for setting in list_settings()
    ]
    DEFAULT_WRITER_BATCH_SIZE = 100  # rows of images per Arrow record batch

    def __init__(
        self,
        *,
        config_name: str | None = None,
        pipeline: Any = None,
        concepts: Any = None,
        released: bool = False,
        diffii_config: MethodConfig | None = None,
        diffii_cache_dir: str | os.PathLike | None = None,
        device: Any = None,
        progress: bool = True,
        download: bool = False,
        **kwargs: Any,
    ) -> None:
        get_setting(config_name)  # a ValueError listing the settings
        _checks.check_bool(download, "download")
        if diffii_config is not None and not isinstance(diffii_config, MethodConfig):
            raise TypeError(f"diffii_config must be a method's config (DiffIIConfig, ...), got "
                            f"{type(diffii_config).__name__}")
        overrides = {name: kwargs.pop(name) for name in _generation_knobs() if name in kwargs}
        if diffii_config is not None:
            if kwargs.setdefault("method", diffii_config.method) != diffii_config.method:
                raise ValueError(f"method={kwargs['method']!r}, but diffii_config is a config of "
                                 f"{diffii_config.method!r}: pass one of them")
            base = diffii_config.to_dict()
            kwargs.setdefault("seed", base.pop("seed"))
            overrides = {**base, **overrides}
        if pipeline is not None:
            from diffii_datasets.diffusion.pipeline import model_identity

            if "model" in overrides and diffii_config is None:
                raise ValueError("pass pipeline= or model=, not both: a ready pipeline names the model itself")
            overrides["model"] = model_identity(pipeline)
        if concepts is not None:
            kwargs["concepts"] = concepts.identity()
        if _checks.check_bool(released, "released"):
            kwargs["released"] = _released_commit(config_name, kwargs, concepts, overrides, diffii_cache_dir, progress)
        source = kwargs.get("source")
        if source is not None:
            given = sorted(overrides) + [name for name, value in (("pipeline", pipeline), ("concepts", concepts),
                                                                  ("data_dir", kwargs.get("data_dir")))
                                         if value is not None]
            if given:
                raise ValueError(f"source={source!r} loads a prebuilt set; these generation arguments would be "
                                 f"ignored, so pass them without source: {', '.join(given)}")
            kwargs["source_fingerprint"] = _source_fingerprint(source, config_name, kwargs.get("revision"),
                                                               kwargs.get("token"))
        if overrides:
            kwargs["diffii"] = {key: list(value) if isinstance(value, tuple) else value
                                for key, value in sorted(overrides.items())}
        kwargs.setdefault("dataset_name", "diffii")
        super().__init__(config_name=config_name, **kwargs)
        if self.config.source is None:
            self.config.method_config()  # bad knobs fail here, not after minutes of work
        self._pipeline = pipeline
        self._concepts = concepts
        self._diffii_cache_dir = diffii_cache_dir
        self._device = device
        self._progress = progress
        self._download = download
        self._store: SyntheticStore | None = None

    @property
    def store(self) -> SyntheticStore | None:
        """The synthetic store of this config, or ``None`` when nothing was generated for it yet.

        Found from the config, so it is set also when ``datasets`` serves the splits from
        its cache without generating (a second ``download_and_prepare``); ``None`` for a
        prebuilt ``source``. Finding it reads the real subset once to fingerprint it.
        """
        from diffii_datasets.store import StoreFormatError
        from diffii_datasets.store.cache import store_path

        if self._store is None and self.config.source is None and self.config.data_dir is not None:
            _, job, cache = self._preparation_job()
            try:
                self._store = SyntheticStore.open(store_path(cache, job.header()))
            except StoreFormatError:  # nothing generated yet
                pass
        return self._store

    def _info(self) -> datasets.DatasetInfo:
        # The class names come from the data: features are set in _split_generators.
        return datasets.DatasetInfo(
            description="Real few-shot or long-tailed subsets and Diff-II synthetic images (CVPR 2025).",
            citation=CITATION,
            homepage="https://arxiv.org/abs/2408.16266",
        )

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        if self.config.source is not None:
            return self._prebuilt_splits()
        return self._generated_splits()

    # -- generating ----------------------------------------------------------------------

    def _preparation_job(self) -> tuple[SettingSplits, PreparationJob, Path]:
        """The setting's real splits, the job that fills this config's store, and the store cache."""
        from diffii_datasets.job import build_job

        if self.config.data_dir is None:
            raise ValueError(f"{self.config.name}: pass data_dir=<raw data root> to generate the set, or "
                             "source=<Hub repo id or export folder> to load a prebuilt one")
        released = None
        if self.config.released is not None:
            from diffii_datasets.released import load_released

            released = load_released(self.config.name, self.config.data_dir, revision=self.config.released,
                                     cache_dir=self._diffii_cache_dir, progress=self._progress,
                                     download=self._download)
            splits = released.splits
        else:
            splits = self.config.setting().load(self.config.data_dir, self.config.seed, download=self._download)
        cache = Path(self._diffii_cache_dir) if self._diffii_cache_dir is not None else default_cache_dir()
        # a reopen reads no image when the files are unchanged (the scan cache)
        job = build_job(splits.train, splits.metaclass, self.config.method_config(), concepts=self._concepts,
                        released=released, cache_dir=cache)
        return splits, job, cache

    def _generated_splits(self) -> list[datasets.SplitGenerator]:
        from diffii_datasets.prepare import prepare

        splits, job, cache = self._preparation_job()
        names = list(job.class_names)
        report = prepare(job, cache_dir=cache, pipeline=self._pipeline, device=self._device, progress=self._progress)
        self._store = report.store
        self._pipeline = None  # generation is over
        self.info.features = diffii_features(names)
        store_path = str(report.store.path)
        generators = [datasets.SplitGenerator(name=split, gen_kwargs={"kind": split, "store_path": store_path})
                      for split in ("train", "synthetic")]
        if self.config.include_test:
            generators.append(datasets.SplitGenerator(name="test", gen_kwargs={
                "kind": "test", "dataset": splits.test, "class_names": tuple(names)}))
        return generators

    # -- downloading ---------------------------------------------------------------------

    def _prebuilt_folder(self) -> Path:
        source = self.config.source
        if Path(source).is_dir():
            return Path(source)
        readme = Path(snapshot_download(source, repo_type="dataset", revision=self.config.source_fingerprint,
                                        allow_patterns=["README.md"], token=self.token))
        patterns = _config_patterns(readme / "README.md", self.config.name)
        return Path(snapshot_download(source, repo_type="dataset", revision=self.config.source_fingerprint,
                                      allow_patterns=["README.md", *patterns], token=self.token))

    def _prebuilt_splits(self) -> list[datasets.SplitGenerator]:
        import pyarrow.parquet as pq

        folder = self._prebuilt_folder()
        files = prebuilt_files(folder, self.config.name)
        unknown = sorted(set(files) - set(SPLITS))
        missing = [split for split in ("train", "synthetic") if split not in files]
        if unknown or missing:
            raise ValueError(f"{self.config.source}: config {self.config.name!r} must have the splits train and "
                             f"synthetic (and optionally test); missing {missing}, unexpected {unknown}")
        names = None
        for split, paths in files.items():
            for path in paths:
                found = check_features(datasets.Features.from_arrow_schema(pq.read_schema(path)), f"{path}")
                if names is not None and found != names:
                    raise ValueError(f"{path} has other class names than the rest of {self.config.name!r}")
                names = found
        self.info.features = diffii_features(names)
        return [datasets.SplitGenerator(name=split, gen_kwargs={"kind": "parquet", "files": [str(p) for p in paths]})
                for split, paths in files.items()]

    # -- rows ----------------------------------------------------------------------------

    def _generate_examples(self, kind: str, store_path: str | None = None, dataset: Any = None,
                           class_names: tuple[str, ...] = (), files: list[str] | None = None
                           ) -> Iterator[tuple[int, dict[str, Any]]]:
        if kind == "parquet":
            rows = _parquet_rows(files or [])
        elif kind == "test":
            rows = test_examples(dataset, class_names)
        elif kind == "train":
            rows = real_examples(SyntheticStore.open(store_path))
        else:
            rows = synthetic_examples(SyntheticStore.open(store_path))
        yield from enumerate(rows)


def _parquet_rows(files: list[str]) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=64):
            yield from batch.to_pylist()


def _config_patterns(readme: Path, config_name: str) -> list[str]:
    from huggingface_hub import DatasetCard

    configs = DatasetCard.load(readme).data.get("configs") or []
    entry = next((c for c in configs if c.get("config_name") == config_name), None)
    if entry is None:
        present = ", ".join(str(c.get("config_name")) for c in configs) or "none"
        raise ValueError(f"config {config_name!r} is not in the repository's README; configs there: {present}")
    patterns = []
    for item in entry.get("data_files") or []:
        path = item.get("path") if isinstance(item, dict) else item
        patterns += [path] if isinstance(path, str) else list(path or [])
    return patterns


def _released_commit(config_name: str, kwargs: dict[str, Any], concepts: Any, overrides: dict[str, Any],
                     diffii_cache_dir: str | os.PathLike | None, progress: bool) -> str:
    """The commit of the authors' released artifacts, fetched now (so the ``datasets`` cache is keyed by it)."""
    from diffii_datasets.released import fetch_released

    given = {"source": kwargs.get("source") is not None, "concepts": concepts is not None,
             "suffixes": "suffixes" in overrides}
    clashes = [name for name, present in given.items() if present]
    if clashes:
        raise ValueError(f"released=True brings the authors' concepts, suffixes and subset; drop {clashes[0]}=")
    return fetch_released(config_name, revision=kwargs.get("revision"), cache_dir=diffii_cache_dir,
                          progress=progress).commit


def _source_fingerprint(source: Any, config_name: str, revision: str | None, token: Any) -> str:
    """What ``source`` holds now: the commit of a Hub repository, or a digest of a local folder's files."""
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a Hub repo id or a folder, got {type(source).__name__}")
    folder = Path(source)
    if folder.is_dir():
        digest = hashlib.sha256()
        for path in [folder / "README.md", *sorted(p for ps in prebuilt_files(folder, config_name).values()
                                                   for p in ps)]:
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:16]
    try:
        check_repo_id(str(source))
    except ValueError:
        raise ValueError(f"source must be a Hub dataset repository id 'namespace/name' or an existing folder, "
                         f"got {source!r}") from None
    snapshot = snapshot_download(str(source), repo_type="dataset", revision=revision,
                                 allow_patterns=["README.md"], token=token)
    return Path(snapshot).name  # the snapshot folder is named by the resolved commit


def load(
    name: str,
    *,
    split: str | None = None,
    source: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    download_mode: str | None = None,
    **kwargs: Any,
) -> datasets.DatasetDict | datasets.Dataset:
    """One of the paper's settings as Hugging Face data: generated from ``data_dir`` or loaded from ``source``.

    ``load("cub-5shot", data_dir="/data")`` generates (or reuses) the set (``download=True``
    fetches a missing raw dataset where torchvision can);
    ``load("cub-5shot", source="someone/diffii-cub")`` downloads a prebuilt one. Other
    keyword arguments go to :class:`DiffIIBuilder` (``seed``, ``pipeline``, ``download``, any Diff-II knob).
    Returns a ``DatasetDict``, or one ``Dataset`` when ``split`` is given.
    """
    builder = DiffIIBuilder(config_name=name, source=None if source is None else str(source),
                            data_dir=None if data_dir is None else str(data_dir),
                            cache_dir=None if cache_dir is None else str(cache_dir), **kwargs)
    builder.download_and_prepare(download_mode=download_mode)
    return builder.as_dataset(split=split)
