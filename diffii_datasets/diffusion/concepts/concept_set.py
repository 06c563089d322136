"""``ConceptSet``: learned class tokens plus the shared LoRA, their names, identity and files.

A concept set saves as files that plain diffusers loads
(``pipe.load_textual_inversion`` / ``pipe.load_lora_weights``; a set learned with
``lora_rank=0`` has no LoRA file) plus a ``concepts.json`` manifest with checksums. Token naming follows the released
concepts and diffusers' multi-vector textual inversion: class ``i`` owns
``<class_i>`` and, with several vectors per class, ``<class_i>_1``, ``<class_i>_2``, ...
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch

from diffii_datasets import _checks
from diffii_datasets._io import (
    FileFormatError,
    atomic_write,
    fingerprint,
    fsync_dir,
    json_bytes,
    process_gone,
    read_json,
    sha256_file,
    temp_name,
    temp_owner,
)
from diffii_datasets.diffusion.concepts.apply import apply_concepts, remove_concepts
from diffii_datasets.diffusion.concepts.lora import check_lora_state_dict
from diffii_datasets.diffusion.concepts.writing import writing
from diffii_datasets.diffusion.prompts import build_prompt
from diffii_datasets.hashing import tensor_digest

__all__ = ["ConceptSet", "class_token"]

CONCEPTS_FILE = "concepts.json"
LORA_FILE = "pytorch_lora_weights.safetensors"  # diffusers' LORA_WEIGHT_NAME_SAFE
EMBEDS_DIR = "learned_embeds"
_FORMAT = "diffii-concepts"
_VERSION = 1


def class_token(class_index: int) -> str:
    """The placeholder token of class ``class_index``: ``<class_{i}>``, as in the released concepts."""
    return f"<class_{class_index}>"


def class_token_list(class_index: int, tokens_per_class: int) -> list[str]:
    """All tokens of one class, named the way diffusers expands a multi-vector embedding."""
    token = class_token(class_index)
    return [token] + [f"{token}_{j}" for j in range(1, tokens_per_class)]


def check_class_names(class_names: Any) -> list[str]:
    """Non-empty, unique class names (class ``i`` owns ``<class_i>``), as a list."""
    names = list(_checks.check_str_sequence(class_names, "class_names", expected="a non-empty list of class names"))
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"class_names must be unique, repeated: {duplicates}")
    return names


def check_metaclass(metaclass: Any) -> str:
    """The metaclass as given (any str: it is the last word of the prompts)."""
    if not isinstance(metaclass, str):
        _checks.fail(TypeError, "metaclass", "a str", metaclass)
    return metaclass


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file on the CPU; ``ValueError`` naming the file when it cannot be read."""
    try:
        return safetensors.torch.load_file(path, device="cpu")
    except (safetensors.SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable safetensors file: {error}") from error


class ConceptSet:
    """Learned concepts: ``embeddings[i]`` holds class ``i``'s token vectors, ``lora_state_dict`` the shared LoRA
    (empty for tokens alone, as textual inversion learns them: ``lora_rank=0``).

    ``lora_state_dict`` uses PEFT's key layout without adapter name, as
    ``peft.get_peft_model_state_dict`` returns it, e.g.
    ``down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight``; the
    LoRA scale is 1 (``lora_alpha == rank``), like the released attention processors.
    Treat both as read-only: :meth:`identity` hashes them.

    ``recipe`` records how the set was learned (``{"config": ConceptConfig knobs,
    "seed": ...}``, see :func:`~diffii_datasets.diffusion.concepts.config.concept_recipe`);
    ``None`` when unknown (imported or built by hand, or saved before recipes were
    recorded). It is metadata: :meth:`identity` covers the weights only.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        metaclass: str,
        embeddings: torch.Tensor,
        lora_state_dict: Mapping[str, torch.Tensor],
        *,
        recipe: Mapping[str, Any] | None = None,
    ) -> None:
        self.class_names = check_class_names(class_names)
        self.metaclass = check_metaclass(metaclass).strip()
        expected = "a floating-point tensor [num_classes, tokens_per_class, dim]"
        if not isinstance(embeddings, torch.Tensor):
            _checks.fail(TypeError, "embeddings", expected, embeddings)
        if not embeddings.is_floating_point() or embeddings.ndim != 3:
            raise ValueError(f"embeddings must be {expected}, got {embeddings.dtype} {tuple(embeddings.shape)}")
        if embeddings.shape[0] != len(self.class_names) or 0 in embeddings.shape:
            raise ValueError(f"embeddings must hold {len(self.class_names)} classes with at least one vector each, "
                             f"got shape {tuple(embeddings.shape)}")
        if not torch.isfinite(embeddings).all():
            raise ValueError("embeddings contain NaN or infinite values")
        self.embeddings = embeddings.detach().to("cpu", torch.float32).contiguous().clone()
        self.lora_state_dict = check_lora_state_dict(lora_state_dict, "lora_state_dict")
        if recipe is not None and not isinstance(recipe, Mapping):
            _checks.fail(TypeError, "recipe", "a mapping or None", recipe)
        self.recipe = dict(recipe) if recipe is not None else None

    # -- names --------------------------------------------------------------------------------------------------------
    @property
    def tokens_per_class(self) -> int:
        return self.embeddings.shape[1]

    @property
    def embedding_dim(self) -> int:
        return self.embeddings.shape[2]

    @property
    def lora_rank(self) -> int:
        """The LoRA's rank; 0 without a LoRA."""
        return next((v.shape[0] for k, v in self.lora_state_dict.items() if k.endswith(".lora_A.weight")), 0)

    @property
    def tokens(self) -> list[str]:
        """Every placeholder token, class by class, in the order they are added to a tokenizer."""
        return [t for i in range(len(self.class_names)) for t in class_token_list(i, self.tokens_per_class)]

    def class_tokens(self, class_index: int) -> str:
        """The token to put in prompts for a pipeline this set is applied to: ``"<class_0>"``.

        This is diffusers' textual-inversion convention: with several vectors per class
        the pipeline's ``encode_prompt`` (``maybe_convert_prompt``) expands ``<class_0>``
        into ``<class_0> <class_0>_1 ...`` itself, so prompts never carry the expansion.
        """
        count = len(self.class_names)
        class_index = _checks.check_int(class_index, "class_index", minimum=0, maximum=count - 1,
                                        expected=f"an int in [0, {count})")
        return class_token(class_index)

    def prompt(self, class_index: int, suffix: str | None = None) -> str:
        """``"a photo of a <tokens> <metaclass>[ <suffix>.]"`` for class ``class_index``."""
        return build_prompt(self.class_tokens(class_index), self.metaclass, suffix)

    def identity(self) -> str:
        """Stable content hash (names, metaclass, every tensor), for store fingerprints."""
        lora = {key: tensor_digest(value) for key, value in self.lora_state_dict.items()}
        return fingerprint({
            "format": _FORMAT,
            "version": _VERSION,
            "class_names": self.class_names,
            "metaclass": self.metaclass,
            "embeddings": tensor_digest(self.embeddings),
            "lora": lora,
        })

    def __repr__(self) -> str:
        return (f"ConceptSet(classes={len(self.class_names)}, metaclass={self.metaclass!r}, "
                f"tokens_per_class={self.tokens_per_class}, dim={self.embedding_dim}, lora_rank={self.lora_rank})")

    # -- pipelines ----------------------------------------------------------------------------------------------------
    def apply(self, pipe: Any) -> None:
        """Load the tokens and the LoRA into ``pipe`` with diffusers' own loaders; on any error, nothing is left.

        Checks everything first (embedding width, free token names, every LoRA target
        module present with matching shapes), then calls ``pipe.load_textual_inversion``
        and ``pipe.unet.load_lora_adapter`` (adapter named after :meth:`identity`).
        """
        apply_concepts(self, pipe)

    def remove(self, pipe: Any) -> None:
        """Undo :meth:`apply`: the tokenizer, embedding matrix and UNet are as they were before it."""
        remove_concepts(self, pipe)

    # -- files --------------------------------------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> None:
        """Write diffusers-native files and ``concepts.json`` (its presence marks a complete save).

        - ``pytorch_lora_weights.safetensors`` (not without a LoRA): laid out by diffusers'
          ``save_lora_weights`` (keys converted with ``convert_state_dict_to_diffusers``),
          loads with ``pipe.load_lora_weights(directory)``.
        - ``learned_embeds/class_{i}.safetensors``: one textual-inversion file per class,
          ``{"<class_i>": tensor[tokens_per_class, dim]}``, loads with ``pipe.load_textual_inversion``.
        - ``concepts.json``: class names, tokens, metaclass, the recipe and the files' SHA-256.

        Every file is written into a temporary folder beside ``directory`` first
        (``.<name>.tmp-<pid>``), then moved in: a new directory appears whole, in one
        rename; over an existing one, its ``concepts.json`` goes first and comes back last.
        A failed write (a full disk) leaves ``directory`` as it was and nothing
        half-written, and raises
        :class:`~diffii_datasets.diffusion.concepts.writing.ConceptWriteError` (an
        ``OSError``) naming the file and the space the set needs.
        """
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        _remove_dead_staging(directory)
        staging = temp_name(directory)
        shutil.rmtree(staging, ignore_errors=True)
        try:
            names = self._write_files(staging)
            _move_into_place(staging, directory, names)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _write_files(self, folder: Path) -> list[str]:
        """Every file of the set in ``folder`` (fsynced), ``concepts.json`` last; returns their relative names."""
        import safetensors.torch
        from diffusers import StableDiffusionPipeline
        from diffusers.utils import convert_state_dict_to_diffusers

        embeddings = {f"{EMBEDS_DIR}/class_{i}.safetensors": safetensors.torch.save({class_token(i): vectors.clone()})
                      for i, vectors in enumerate(self.embeddings)}
        lora_bytes = sum(v.numel() * v.element_size() for v in self.lora_state_dict.values())
        needed = sum(len(data) for data in embeddings.values()) + lora_bytes + 2 ** 16  # + headers and manifest
        with writing(folder / EMBEDS_DIR, needed):
            (folder / EMBEDS_DIR).mkdir(parents=True)
        for name, data in embeddings.items():
            with writing(folder / name, needed):
                atomic_write(folder / name, data)
        files = list(embeddings)
        if self.lora_state_dict:
            def save_function(weights: dict[str, torch.Tensor], filename: str) -> None:
                # what diffusers' own save_function writes, through a writer whose errors name the file
                with writing(filename, needed):
                    atomic_write(filename, safetensors.torch.save(weights, metadata={"format": "pt"}))

            StableDiffusionPipeline.save_lora_weights(
                folder, unet_lora_layers=convert_state_dict_to_diffusers(dict(self.lora_state_dict)),
                weight_name=LORA_FILE, save_function=save_function,
            )
            files.append(LORA_FILE)
        manifest = {
            "format": _FORMAT,
            "version": _VERSION,
            "class_names": self.class_names,
            "metaclass": self.metaclass,
            "tokens_per_class": self.tokens_per_class,
            "embedding_dim": self.embedding_dim,
            "lora_rank": self.lora_rank,
            "class_tokens": [class_token(i) for i in range(len(self.class_names))],
            "embedding_files": list(embeddings),
            "lora_file": LORA_FILE if self.lora_state_dict else None,
            "sha256": {name: sha256_file(folder / name) for name in files},
            "identity": self.identity(),
            "recipe": self.recipe,
        }
        data = json_bytes(manifest)
        with writing(folder / CONCEPTS_FILE, needed):
            atomic_write(folder / CONCEPTS_FILE, data)
        fsync_dir(folder / EMBEDS_DIR)
        fsync_dir(folder)
        return files

    @classmethod
    def load(cls, directory: str | os.PathLike) -> ConceptSet:
        """Read a directory written by :meth:`save`; missing, truncated or altered files raise ``ValueError``."""
        from diffusers.utils import convert_unet_state_dict_to_peft

        directory = Path(directory)
        manifest_path = directory / CONCEPTS_FILE
        if not manifest_path.is_file():
            raise ValueError(f"{directory} holds no saved concept set: {CONCEPTS_FILE} is missing "
                             "(the save was interrupted, or this is not a concept directory)")
        names, metaclass, embed_files, lora_file, digests, recipe = _read_manifest(manifest_path)
        for name in embed_files + ([lora_file] if lora_file is not None else []):
            path = directory / name
            if not path.is_file():
                raise ValueError(f"concept file {path} is missing")
            if sha256_file(path) != digests.get(name):
                raise ValueError(f"concept file {path} is corrupt or truncated (SHA-256 differs from {CONCEPTS_FILE})")
        vectors = []
        for i, name in enumerate(embed_files):
            tensors = load_safetensors(directory / name)
            if list(tensors) != [class_token(i)]:
                raise ValueError(f"{directory / name} must hold exactly the key {class_token(i)!r}, "
                                 f"got {list(tensors)}")
            vectors.append(tensors[class_token(i)].reshape(-1, tensors[class_token(i)].shape[-1]))
        if len({tuple(v.shape) for v in vectors}) != 1:
            raise ValueError(f"embedding files in {directory / EMBEDS_DIR} have different shapes")
        lora: dict[str, torch.Tensor] = {}
        if lora_file is not None:
            lora = load_safetensors(directory / lora_file)
            if not lora or not all(key.startswith("unet.") for key in lora):
                raise ValueError(f"{directory / lora_file} must hold UNet LoRA keys ('unet.' prefix) only")
            lora = convert_unet_state_dict_to_peft({key.removeprefix("unet."): value for key, value in lora.items()})
        concepts = cls(names, metaclass, torch.stack(vectors), lora, recipe=recipe)
        _check_manifest_matches(manifest_path, concepts)
        return concepts


def _read_manifest(path: Path) -> tuple[Any, Any, list[str], str | None, dict[str, str], dict[str, Any] | None]:
    """``(class names, metaclass, embedding files, LoRA file, SHA-256 by file, recipe)``; ``FileFormatError`` if
    invalid. A manifest saved before recipes were recorded has none (``None``); a set without LoRA no LoRA file."""
    invalid = f"is not a valid {_FORMAT} v{_VERSION} manifest"
    try:
        manifest = read_json(path)
    except FileFormatError as error:
        raise FileFormatError(path, f"{invalid}: {error.problem}") from error
    try:
        if manifest.get("format") != _FORMAT or manifest.get("version") != _VERSION:
            raise ValueError(f"format {manifest.get('format')!r} version {manifest.get('version')!r}")
        names, metaclass = manifest["class_names"], manifest["metaclass"]
        embed_files, lora_file, digests = manifest["embedding_files"], manifest["lora_file"], manifest["sha256"]
        if not (isinstance(embed_files, list) and isinstance(lora_file, (str, type(None)))
                and isinstance(digests, dict)):
            raise ValueError("embedding_files, lora_file or sha256 has the wrong type")
        if len(embed_files) != len(names):
            raise ValueError(f"{len(embed_files)} embedding files for {len(names)} classes")
        recipe = manifest.get("recipe")
        if recipe is not None and not isinstance(recipe, dict):
            raise ValueError("recipe must be an object or null")
    except (ValueError, KeyError, TypeError) as error:
        raise FileFormatError(path, f"{invalid}: {error}") from error
    return names, metaclass, embed_files, lora_file, digests, recipe


def _check_manifest_matches(path: Path, concepts: ConceptSet) -> None:
    """``concepts.json`` must describe the set loaded from the files it names, in the form :meth:`save` writes.

    Its ``identity`` covers the names, the metaclass and every tensor, so an edited or
    damaged field is refused, not used (``recipe`` is metadata: it is only reported).
    """
    data = path.read_bytes()
    manifest = json.loads(data)
    if data not in (json_bytes(manifest), json.dumps(manifest, indent=2).encode("utf-8")):  # now, and before 0.2
        raise FileFormatError(path, "is not in the form ConceptSet.save writes (edited or damaged)")
    count = len(concepts.class_names)
    expected = {
        "identity": concepts.identity(),
        "tokens_per_class": concepts.tokens_per_class,
        "embedding_dim": concepts.embedding_dim,
        "lora_rank": concepts.lora_rank,
        "class_tokens": [class_token(i) for i in range(count)],
        "embedding_files": [f"{EMBEDS_DIR}/class_{i}.safetensors" for i in range(count)],
        "lora_file": LORA_FILE if concepts.lora_state_dict else None,
    }
    wrong = [key for key, value in expected.items() if manifest.get(key) != value]
    files = expected["embedding_files"] + ([LORA_FILE] if concepts.lora_state_dict else [])
    if sorted(manifest["sha256"]) != sorted(files):
        wrong.append("sha256")
    if wrong:
        raise FileFormatError(path, f"does not describe the concept set in its files (edited or damaged: "
                                    f"{', '.join(wrong)})")


def _move_into_place(staging: Path, directory: Path, files: list[str]) -> None:
    """Move a saved set from ``staging`` to ``directory``: one rename when it is new, else file by file."""
    if not directory.exists():
        os.rename(staging, directory)
        fsync_dir(directory.parent)
        return
    (directory / CONCEPTS_FILE).unlink(missing_ok=True)  # an interrupted move must not look complete
    fsync_dir(directory)
    (directory / EMBEDS_DIR).mkdir(exist_ok=True)
    for stale in (directory / EMBEDS_DIR).glob("*.safetensors"):  # a glob over the folder must see only this set
        stale.unlink()
    if LORA_FILE not in files:
        (directory / LORA_FILE).unlink(missing_ok=True)
    for name in files:
        os.replace(staging / name, directory / name)
    fsync_dir(directory / EMBEDS_DIR)
    os.replace(staging / CONCEPTS_FILE, directory / CONCEPTS_FILE)
    fsync_dir(directory)


def _remove_dead_staging(directory: Path) -> None:
    """Remove what saves into ``directory`` by processes that are gone left behind (``.<name>.tmp-<pid>``)."""
    prefix = f".{directory.name}.tmp-"
    for path in directory.parent.iterdir():
        owner = temp_owner(path.name) if path.name.startswith(prefix) else None
        if owner is not None and process_gone(owner) and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
