"""Offline, deterministic fixtures shared by the tests, the benchmarks and the demo.

No pretrained weights can be downloaded where this project is built and tested, so
:func:`tiny_pipeline` builds a real :class:`diffusers.StableDiffusionPipeline` from
configs with random weights and a CLIP BPE tokenizer made on the spot, and
:func:`tiny_image_dataset` draws a small labelled image dataset procedurally.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

__all__ = [
    "SD_SHAPES",
    "TinyImageDataset",
    "sd_shaped_pipeline",
    "tiny_clip_tokenizer",
    "tiny_image_dataset",
    "tiny_pipeline",
]

# Words the tiny tokenizer knows as single tokens: the prompt template, the
# metaclasses, suffix vocabulary and the tiny dataset's class names. Everything
# else still tokenizes (byte-level fallback), just into several pieces.
TOKENIZER_WORDS = (
    "a an the of in on at with and by near over under photo picture "
    "bird aircraft plane car animal pet flower shape "
    "red green blue yellow purple orange cyan pink circle square triangle diamond cross ring "
    "sparrow warbler gull tern wren crow jay "
    "standing perched flying swimming sitting lying parked driving blooming "
    "branch tree sky water grass runway road street field garden snow sun rain bee leaf leaves"
).split()

# Vocabulary entries of CLIP's tokenizer that code looks up by name rather than reaching through text:
# "ktn", the token every placeholder starts from in the published concept recipe (id 42170 in SD-1.5's
# tokenizer; see diffii_datasets.diffusion.concepts.config.PUBLISHED_INIT_TOKEN). No merge produces them,
# so text tokenizes exactly as without them.
LOOKUP_TOKENS = ("ktn",)

# SD-1.5's scheduler settings (scheduler/scheduler_config.json of the hub repo).
SD15_SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "set_alpha_to_one": False,
    "clip_sample": False,
    "skip_prk_steps": True,
    "trained_betas": None,
}


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte to printable-character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {byte: chr(code) for byte, code in zip(printable, codes)}


def _bpe(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Apply BPE merges (lowest rank first) to one word, as the tokenizers library does."""
    while len(symbols) > 1:
        pairs = [(ranks.get(pair, len(ranks)), i) for i, pair in enumerate(zip(symbols, symbols[1:]))]
        rank, i = min(pairs)
        if rank == len(ranks):
            break
        symbols = symbols[:i] + [symbols[i] + symbols[i + 1]] + symbols[i + 2:]
    return symbols


def _word_symbols(word: str, table: dict[int, str]) -> list[str]:
    chars = [table[b] for b in word.encode("utf-8")]
    return chars[:-1] + [chars[-1] + "</w>"]


def tiny_clip_tokenizer(words: Sequence[str] = TOKENIZER_WORDS):
    """A CLIP BPE tokenizer with a locally generated vocabulary.

    The vocabulary holds the 256 byte-level symbols (plain and end-of-word), one
    merge chain per word in ``words``, :data:`LOOKUP_TOKENS` (entries without a
    merge, for lookups by name) and CLIP's start/end tokens. Merges are
    added greedily after the existing ones, which keeps every earlier word a
    single token, so each listed word encodes to exactly one id.
    """
    from transformers import CLIPTokenizer

    table = _bytes_to_unicode()
    alphabet = list(table.values())
    vocab: dict[str, int] = {}
    for symbol in alphabet + [c + "</w>" for c in alphabet]:
        vocab[symbol] = len(vocab)
    ranks: dict[tuple[str, str], int] = {}
    for word in dict.fromkeys(words):
        symbols = _bpe(_word_symbols(word, table), ranks)
        while len(symbols) > 1:
            pair = (symbols[0], symbols[1])
            ranks[pair] = len(ranks)
            vocab.setdefault(pair[0] + pair[1], len(vocab))
            symbols = [pair[0] + pair[1]] + symbols[2:]
    for token in LOOKUP_TOKENS:
        vocab.setdefault(token, len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    merges = sorted(ranks, key=ranks.__getitem__)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def _assemble(unet, vae, text_encoder, tokenizer, torch_dtype: torch.dtype, device: str | torch.device | None):
    """A ``StableDiffusionPipeline`` of the given modules with SD-1.5's scheduler, no safety checker, quiet."""
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=PNDMScheduler.from_config(SD15_SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    if torch_dtype != torch.float32:
        pipe.to(dtype=torch_dtype)
    return pipe.to(device) if device is not None else pipe


def tiny_pipeline(
    seed: int = 0,
    *,
    sample_size: int = 16,
    torch_dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
):
    """A real ``StableDiffusionPipeline`` with tiny random weights, built offline.

    The UNet keeps SD-1.5's block layout in miniature (cross-attention blocks first
    on the way down, a mid-block with attention, mirrored on the way up) so that
    LoRA targets and released key names exist, and images are ``2 * sample_size``
    pixels wide. The scheduler mirrors SD-1.5's. The same ``seed`` gives the same
    weights bit for bit, and the global RNG is left untouched.

    With the default arguments the pipeline is named ``"tiny"``
    (:data:`~diffii_datasets.config.TINY_MODEL`, what ``--model tiny`` loads), so a store
    made with it names the same model whether the pipeline was passed or loaded by name.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = tiny_clip_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=sample_size,
            in_channels=4,
            out_channels=4,
            block_out_channels=(32, 64),
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=8,
            norm_num_groups=32,
        )
        vae = AutoencoderKL(
            sample_size=2 * sample_size,
            in_channels=3,
            out_channels=3,
            block_out_channels=(32, 64),
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=32,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=32,
                intermediate_size=37,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=77,
                projection_dim=32,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
    pipe = _assemble(unet, vae, text_encoder, tokenizer, torch_dtype, device)
    if (seed, sample_size, torch_dtype) == (0, 16, torch.float32):
        from diffii_datasets.config import TINY_MODEL

        pipe.register_to_config(_name_or_path=TINY_MODEL)
    return pipe


# Stable Diffusion 1.5's architecture ("sd15": the real sizes, 512 px) and a scaled-down copy ("small", 256 px)
# for CPU benchmarks: the same blocks (three cross-attention down blocks and a plain one, two layers each, a
# mid-block with attention, mirrored up blocks, a four-level VAE), with channels cut tenfold (UNet) and
# eightfold (VAE), 32-wide attention heads and a shallower text encoder. The small one keeps SD-1.5's
# proportions of work: the UNet does about 90% of the FLOPs of a generated image (SD-1.5: 94%) and the VAE
# encoder about a third of a training step's (SD-1.5: 31%).
SD_SHAPES: dict[str, dict[str, Any]] = {
    "sd15": {
        "sample_size": 64,
        "unet": {"block_out_channels": (320, 640, 1280, 1280), "attention_head_dim": 8, "norm_num_groups": 32},
        "vae": {"block_out_channels": (128, 256, 512, 512), "norm_num_groups": 32},
        "text": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                 "vocab_size": 49408},
    },
    "small": {
        "sample_size": 32,
        "unet": {"block_out_channels": (32, 64, 128, 128), "attention_head_dim": (1, 2, 4, 4), "norm_num_groups": 32},
        "vae": {"block_out_channels": (16, 32, 64, 64), "norm_num_groups": 16},
        "text": {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 6, "num_attention_heads": 2,
                 "vocab_size": None},  # None: the tokenizer's size
    },
}


def sd_shaped_pipeline(
    size: str = "small",
    seed: int = 0,
    *,
    torch_dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
):
    """A ``StableDiffusionPipeline`` with SD-1.5's block structure and random weights, built offline.

    ``size`` is a key of :data:`SD_SHAPES`: ``"sd15"`` has SD-1.5's exact layer
    sizes (860M-parameter UNet, 512 px images); ``"small"`` the same structure
    scaled down to run on a CPU (256 px images). For benchmarks: the weights are
    random, so the images are noise, but every operation and its cost are real.
    The same ``seed`` gives the same weights; the global RNG is left untouched.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    if size not in SD_SHAPES:
        raise ValueError(f"size must be one of {sorted(SD_SHAPES)}, got {size!r}")
    shape = SD_SHAPES[size]
    tokenizer = tiny_clip_tokenizer()
    text = dict(shape["text"])
    text["vocab_size"] = text["vocab_size"] or len(tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=shape["sample_size"],
            in_channels=4,
            out_channels=4,
            layers_per_block=2,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=text["hidden_size"],
            **shape["unet"],
        )
        vae = AutoencoderKL(
            sample_size=shape["sample_size"] * 8,
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            latent_channels=4,
            layers_per_block=2,
            **shape["vae"],
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                max_position_embeddings=77,
                projection_dim=text["hidden_size"],
                hidden_act="quick_gelu",
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                **text,
            )
        )
    return _assemble(unet, vae, text_encoder, tokenizer, torch_dtype, device)


SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 200, 30),
    "purple": (140, 50, 170),
    "orange": (240, 130, 20),
    "cyan": (30, 190, 200),
    "pink": (240, 120, 180),
}


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[float, float, float, float],
                colour: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    cx, cy, w = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=colour)
    elif shape == "diamond":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=colour)
    elif shape == "cross":
        t = w / 6
        draw.rectangle((cx - t, y0, cx + t, y1), fill=colour)
        draw.rectangle((x0, cy - t, x1, cy + t), fill=colour)
    else:  # ring
        draw.ellipse(box, outline=colour, width=max(1, int(w / 6)))


class TinyImageDataset(Dataset):
    """A torchvision-style dataset of procedurally drawn images, one shape/colour per class.

    Items are ``(PIL.Image, int)``; ``classes``, ``class_to_idx``, ``targets``,
    ``transform`` and ``target_transform`` behave as in ``torchvision.datasets``.
    """

    def __init__(
        self,
        num_classes: int = 3,
        per_class: int | Sequence[int] = 4,
        size: int = 32,
        seed: int = 0,
        *,
        classes: Sequence[str] | None = None,
        transform: Callable[[Image.Image], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
    ) -> None:
        max_classes = len(SHAPES) * len(COLOURS)
        if not 1 <= num_classes <= max_classes:
            raise ValueError(f"num_classes must be in [1, {max_classes}], got {num_classes}")
        counts = [per_class] * num_classes if isinstance(per_class, int) else list(per_class)
        if len(counts) != num_classes or any(c < 0 for c in counts):
            raise ValueError(
                f"per_class must be a non-negative int or {num_classes} non-negative ints, got {per_class!r}"
            )
        if size < 8:
            raise ValueError(f"size must be at least 8 pixels, got {size}")
        colour_names = list(COLOURS)
        self._styles = [(SHAPES[c % len(SHAPES)], colour_names[(c + c // len(SHAPES)) % len(colour_names)])
                        for c in range(num_classes)]
        if classes is None:
            classes = [f"{colour} {shape}" for shape, colour in self._styles]
        if len(classes) != num_classes:
            raise ValueError(f"classes must name {num_classes} classes, got {len(classes)}")
        self.classes = list(classes)
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.targets = [c for c, n in enumerate(counts) for _ in range(n)]
        self._index_in_class = [i for n in counts for i in range(n)]
        self.size = size
        self.seed = seed
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self) -> int:
        return len(self.targets)

    def draw(self, index: int) -> Image.Image:
        """Draw item ``index``: the same image for the same (seed, class, index in class)."""
        label = self.targets[index]
        shape, colour = self._styles[label]
        rng = np.random.default_rng([self.seed, label, self._index_in_class[index]])
        background = tuple(int(v) for v in rng.integers(200, 256, size=3))
        image = Image.new("RGB", (self.size, self.size), background)
        draw = ImageDraw.Draw(image)
        extent = self.size * rng.uniform(0.45, 0.75)
        x0, y0 = rng.uniform(0, self.size - extent, size=2)
        jitter = rng.integers(-25, 26, size=3)
        fill = tuple(int(np.clip(v + j, 0, 255)) for v, j in zip(COLOURS[colour], jitter))
        _draw_shape(draw, shape, (x0, y0, x0 + extent, y0 + extent), fill)
        return image

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        index %= len(self)
        image, target = self.draw(index), self.targets[index]
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target


def tiny_image_dataset(
    num_classes: int = 3,
    per_class: int | Sequence[int] = 4,
    size: int = 32,
    seed: int = 0,
    **kwargs: Any,
) -> TinyImageDataset:
    """A :class:`TinyImageDataset`; extra keyword arguments go to its constructor."""
    return TinyImageDataset(num_classes, per_class, size, seed, **kwargs)
