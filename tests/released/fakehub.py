"""A local stand-in for the Hub's dataset repository ``Luka-Wang/Diff-II``, and archives in the authors' layout.

:class:`FakeHub` answers ``HEAD`` and ``GET`` on ``/datasets/<repo>/resolve/<revision>/<file>``
on 127.0.0.1 with the headers ``hf_hub_download`` reads (``ETag``, ``X-Repo-Commit``,
``Content-Length``; ``X-Error-Code`` on a 404) and records every request.
:func:`hub_at` points ``huggingface_hub`` at it, online, with a fresh Hub cache.
:func:`release_archives` writes the three zips for the fake CUB of :mod:`tests.helpers.cli`;
:func:`unzipped` and :func:`write_tree` lay them out on disk as a user's copy would be.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import threading
import zipfile
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import torch
from safetensors.torch import save

from tests.helpers.cli import CLASSES

REPO = "Luka-Wang/Diff-II"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
RANK = 2
# The authors' names of the fake CUB's classes, listed in another order than the dataset's.
RELEASED_ORDER = ["Sooty_Albatross", "Black_footed_Albatross", "Laysan_Albatross"]
SUFFIX_LINES = ["standing on a branch.", "flying over the sea", "  on a sandy beach at dawn."]


class FakeHub:
    """Serves ``files`` (name -> bytes) as the repository's files at ``main`` and :data:`COMMIT`;
    with ``status``, answers every request with that HTTP status instead (a Hub that is down)."""

    def __init__(self, files: dict[str, bytes], *, status: int | None = None) -> None:
        self.files = dict(files)
        self.status = status
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                hub.requests.append((self.command, unquote(self.path)))
                if hub.status is not None:
                    self.send_response(hub.status)
                    self.send_header("Content-Length", "0")
                    return self.end_headers()
                prefix = f"/datasets/{REPO}/resolve/"
                path = unquote(self.path.split("?")[0])
                revision, _, name = path[len(prefix):].partition("/") if path.startswith(prefix) else ("", "", "")
                if revision not in ("main", COMMIT):
                    return self._error("RevisionNotFound" if path.startswith(prefix) else "RepoNotFound")
                if name not in hub.files:
                    return self._error("EntryNotFound")
                data = hub.files[name]
                start = 0
                ranged = self.headers.get("Range", "")
                if ranged.startswith("bytes=") and ranged[6:].split("-")[0]:
                    start = int(ranged[6:].split("-")[0])
                self.send_response(206 if start else 200)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(data) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if body:
                    self.wfile.write(data[start:])

            def _error(self, code: str) -> None:
                message = code.encode()
                self.send_response(404)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Content-Length", str(len(message)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(message)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def gets(self) -> Counter:
        """GET requests per file name."""
        return Counter(path.rsplit("/", 1)[-1] for method, path in self.requests if method == "GET")

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def hub_at(monkeypatch, url: str, hub_cache: Path, *, offline: bool = False) -> None:
    """Point ``huggingface_hub`` at ``url`` with the Hub cache ``hub_cache``; online unless ``offline``."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def unreachable_url() -> str:
    """The address of a local port nothing listens on: every connection is refused, as with no network."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _images(per_class: dict[str, tuple[int, int]], test: bool) -> list[tuple[str, str]]:
    """``(authors' category, file name)`` of the fake CUB's train or test images (see ``write_cub``)."""
    images = []
    for label, (folder, (n_train, n_test)) in enumerate(per_class.items()):
        name = folder.split(".", 1)[1]
        js = range(n_train, n_train + n_test) if test else range(n_train)
        images += [(name, f"{name}_{j:04d}_{label}.jpg") for j in js]
    return images


def image_lists(per_class: dict[str, tuple[int, int]] = CLASSES, *, extra_train: tuple[str, str] | None = None
                ) -> dict[str, bytes]:
    """``datasets.zip``'s members for cub-5shot: both lists (labels in the authors' order) and the train images."""
    label = {name: i for i, name in enumerate(RELEASED_ORDER)}
    train = _images(per_class, test=False) + ([extra_train] if extra_train else [])
    members = {}
    lines = []
    for category, file in train:
        path = f"datasets/cub/5shot/train/{category}/{file}"
        lines.append(f"{path} {label.get(category, 99)}\n")
        members[path] = b"\xff\xd8 not read"
    members["datasets/cub/5shot/train.txt"] = "".join(lines).encode()
    members["datasets/cub/test.txt"] = "".join(f"datasets/cub/test/{c}/{f} {label[c]}\n"
                                               for c, f in _images(per_class, test=True)).encode()
    return members


def concept_files(unet, width: int = 32, seed: int = 0) -> tuple[dict[str, bytes], dict[str, torch.Tensor]]:
    """``ft_ti_db/cub/5shot/`` in the released formats for the tiny UNet; also ``{authors' name: vector}``."""
    from diffusers.models.attention_processor import Attention

    generator = torch.Generator().manual_seed(seed)
    lora = {}
    for name, module in unet.named_modules():
        if isinstance(module, Attention):
            for projection, layer in (("to_q", module.to_q), ("to_k", module.to_k), ("to_v", module.to_v),
                                      ("to_out", module.to_out[0])):
                lora[f"{name}.processor.{projection}_lora.down.weight"] = 0.1 * torch.randn(
                    RANK, layer.in_features, generator=generator)
                lora[f"{name}.processor.{projection}_lora.up.weight"] = 0.1 * torch.randn(
                    layer.out_features, RANK, generator=generator)
    placeholders = [f"<class_{i}>" for i in range(len(RELEASED_ORDER))]
    vectors = {placeholder: torch.randn(width, generator=generator) for placeholder in placeholders}
    embeds = {"learned_embeds_dict": vectors, "name2placeholder": dict(zip(RELEASED_ORDER, placeholders)),
              "placeholder2name": dict(zip(placeholders, RELEASED_ORDER))}
    embeds_buffer = io.BytesIO()
    torch.save(embeds, embeds_buffer)
    members = {"ft_ti_db/cub/5shot/learned_embeds-steps-35000.bin": embeds_buffer.getvalue(),
               "ft_ti_db/cub/5shot/pytorch_lora_weights.safetensors": save(lora)}
    return members, dict(zip(RELEASED_ORDER, vectors.values()))


def release_archives(unet) -> tuple[dict[str, bytes], dict[str, torch.Tensor]]:
    """The three archives of a fake release of cub-5shot, and the released vector of each authors' class name."""
    concepts, vectors = concept_files(unet)
    suffixes = {"suffix/cub/5shot.txt": "\n".join(SUFFIX_LINES).encode()}  # no final newline
    return {"datasets.zip": zip_bytes(image_lists()), "ft_ti_db.zip": zip_bytes(concepts),
            "suffix.zip": zip_bytes(suffixes)}, vectors


def unzipped(archive: bytes) -> dict[str, bytes]:
    """The members of a zip, ``{name: bytes}`` (files only)."""
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        return {info.filename: opened.read(info) for info in opened.infolist() if not info.is_dir()}


def write_tree(folder: Path, members: dict[str, bytes]) -> Path:
    """``members`` written under ``folder`` as files (what ``unzip`` does); ``folder``."""
    for name, data in members.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder
