"""Which base items a synthetic image replaces, epoch by epoch: the replace-mode draws of :class:`DiffIIAugmented`.

Base item ``i`` of epoch ``e`` is drawn by ``numpy.random.default_rng([seed, e, i])``, as in diffii-datasets 0.2, so
a seed serves the same items in every version (a 0.2 store is served byte for byte): ``random() < p`` replaces it,
``choice(classes, p=weights)`` picks the class when class-balanced, ``integers(len(pool))`` the image. A Generator
per item costs about 20 microseconds, a fifth of reading a small image, so :func:`replace_draws` draws an epoch's
items (a small dataset's next epochs too) at once, by the same arithmetic in numpy: SeedSequence's hash, PCG64's
128-bit steps and Lemire's bounded integers. An item whose bounded draw needs a second number (a chance below
pool size / 2**32) is drawn by numpy itself. ``tests/test_augmented.py`` checks that both agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["EPOCHS_AHEAD", "ITEMS_AHEAD", "replace_draws"]

_M32 = 0xFFFFFFFF
EPOCHS_AHEAD, ITEMS_AHEAD = 16, 4096  # a dataset of n items gets min(16, 4096 // n) epochs drawn at once


def _hash_constants(start: int, multiplier: int, count: int) -> np.ndarray:
    """SeedSequence's running hash constant: ``start``, then times ``multiplier`` (mod 2**32) after each use."""
    values = [start]
    for _ in range(count):
        values.append(values[-1] * multiplier & _M32)
    return np.array(values, dtype=np.uint32)[:, None]


_MIX_HASH = _hash_constants(0x43B0D7E5, 0x931E8875, 64)  # INIT_A, MULT_A: what entropy is mixed with
_STATE_HASH = _hash_constants(0x8B51F9DD, 0x58F38DED, 8)  # INIT_B, MULT_B: what the state words are drawn with
_MIX_LEFT, _MIX_RIGHT, _SHIFT16 = np.uint32(0xCA01F9DD), np.uint32(0x4973F715), np.uint32(16)
_OTHERS = [[target for target in range(4) if target != source] for source in range(4)]
_PCG_MULTIPLIER = 0x2360ED051FC65DA44385DF649FCCF645
_U64 = {bits: np.uint64(bits) for bits in (1, 11, 32, 58, 63, 64)}
_LOW32 = np.uint64(_M32)


def _jumps(count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the states after 2 .. count + 1 steps of PCG64's LCG from ``u``: ``s = A u + B inc`` (mod 2**128).

    ``(high words, low words' low halves, low words' high halves)``, each ``[2, count, 1]``: ``A``'s, then ``B``'s.
    """
    a = [pow(_PCG_MULTIPLIER, k + 1, 1 << 128) for k in range(1, count + 1)]
    b = [sum(pow(_PCG_MULTIPLIER, j, 1 << 128) for j in range(k + 1)) % (1 << 128) for k in range(1, count + 1)]
    return tuple(np.array([[[v >> shift & mask] for v in values] for values in (a, b)], dtype=np.uint64)
                 for shift, mask in ((64, 2**64 - 1), (0, _M32), (32, _M32)))


_PCG_JUMPS = {count: _jumps(count) for count in (2, 3)}


def replace_draws(seed: int, epochs: Sequence[int], targets: np.ndarray, probability: float,
                  pool_sizes: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Every base item's replace-mode draw of each epoch: ``(class, position in the class's synthetic pool)``,
    each ``[len(epochs), len(targets)]``.

    The position is -1 for an item served as itself (not drawn, or its class has no synthetic image).
    ``targets``: the base items' classes; ``pool_sizes``: synthetic images per class; ``weights``: the
    class-balanced class probabilities, or ``None`` to keep each item's class.
    """
    epochs, count = [int(epoch) for epoch in epochs], len(targets)
    labels = np.tile(np.asarray(targets, dtype=np.int64), (len(epochs), 1))
    positions = np.full_like(labels, -1)
    if probability <= 0 or count == 0 or not epochs:
        return labels, positions
    if count > 2**32:
        raise ValueError(f"replace mode draws among at most 2**32 base items, got {count}")
    # One batch when every epoch is one word of entropy (as indices are), else an epoch at a time.
    batches = [range(len(epochs))] if max(epochs) <= _M32 else [[row] for row in range(len(epochs))]
    for rows in batches:
        batch = [epochs[row] for row in rows]
        epoch_words = [np.repeat(np.array(words, dtype=np.uint32), count) for words in zip(*map(_words, batch))]
        indices = np.tile(np.arange(count, dtype=np.uint32), len(batch))
        with np.errstate(over="ignore"):
            state = _seed_state(_words(seed) + epoch_words + [indices], len(indices))
            outputs = _pcg64_outputs(state, 3 if weights is not None else 2)
        drawn_labels, drawn_positions = labels[rows].reshape(-1), positions[rows].reshape(-1)
        replaced = _uniform(outputs[0]) < probability
        if weights is not None:
            cdf = weights.cumsum()
            cdf /= cdf[-1]
            drawn_labels = np.where(replaced, np.searchsorted(cdf, _uniform(outputs[1]), side="right"), drawn_labels)
        sizes = pool_sizes[drawn_labels].astype(np.uint64)
        scaled = (outputs[-1] & _LOW32) * sizes  # Lemire: the high word is the draw, unless rejected (one of 1: 0)
        safe = np.maximum(sizes, _U64[1])
        rejected = (scaled & _LOW32) < (np.uint64(2**32) - safe) % safe
        drawn_positions = np.where(replaced & (sizes > 0), scaled >> _U64[32], -1)
        for flat in np.flatnonzero(replaced & (rejected | (sizes > _M32))).tolist():
            index = flat % count
            drawn_labels[flat], drawn_positions[flat] = _draw_one(seed, batch[flat // count], index,
                                                                  int(targets[index]), probability, pool_sizes,
                                                                  weights)
        labels[rows] = drawn_labels.reshape(len(batch), count)
        positions[rows] = drawn_positions.reshape(len(batch), count)
    return labels, positions


def _draw_one(seed: int, epoch: int, index: int, label: int, probability: float, pool_sizes: np.ndarray,
              weights: np.ndarray | None) -> tuple[int, int]:
    """One item's draw by numpy itself: what :func:`replace_draws` computes for all at once."""
    rng = np.random.default_rng([seed, epoch, index])
    if not rng.random() < probability:
        return label, -1
    if weights is not None:
        label = int(rng.choice(len(weights), p=weights))
    size = int(pool_sizes[label])
    return label, int(rng.integers(size)) if size else -1


def _words(value: int) -> list[int]:
    """A non-negative int as SeedSequence takes it: 32-bit words, least significant first (0 is one word)."""
    words = [] if value else [0]
    while value:
        words.append(value & _M32)
        value >>= 32
    return words


def _seed_state(entropy: list[Any], count: int) -> np.ndarray:
    """``SeedSequence(entropy).generate_state(4, np.uint64)`` of ``count`` items as ``[4, count]``: entropy words
    are uint32 scalars or ``[count]`` arrays (run under ``np.errstate(over="ignore")``: the hash wraps around)."""
    words = np.zeros((max(4, len(entropy)), count), dtype=np.uint32)
    for row, word in enumerate(entropy):
        words[row] = word
    hashed = (words[:4] ^ _MIX_HASH[0:4]) * _MIX_HASH[1:5]
    pool = hashed ^ (hashed >> _SHIFT16)
    used = 4
    for source in range(4):  # each word mixed into the others (they do not change meanwhile: all three at once)
        targets = _OTHERS[source]
        hashed = (pool[source] ^ _MIX_HASH[used:used + 3]) * _MIX_HASH[used + 1:used + 4]
        mixed = _MIX_LEFT * pool[targets] - _MIX_RIGHT * (hashed ^ (hashed >> _SHIFT16))
        pool[targets] = mixed ^ (mixed >> _SHIFT16)
        used += 3
    for source in range(4, len(entropy)):  # entropy beyond the pool's four words
        hashed = (words[source] ^ _MIX_HASH[used:used + 4]) * _MIX_HASH[used + 1:used + 5]
        mixed = _MIX_LEFT * pool - _MIX_RIGHT * (hashed ^ (hashed >> _SHIFT16))
        pool = mixed ^ (mixed >> _SHIFT16)
        used += 4
    drawn = (np.concatenate([pool, pool]) ^ _STATE_HASH[0:8]) * _STATE_HASH[1:9]
    drawn = (drawn ^ (drawn >> _SHIFT16)).astype(np.uint64)
    return drawn[0::2] | (drawn[1::2] << _U64[32])


def _pcg64_outputs(state: np.ndarray, count: int) -> np.ndarray:
    """The first ``count`` (2 or 3) 64-bit outputs of ``PCG64`` seeded with SeedSequence states, ``[count, n]``.

    Seeding steps the LCG from 0 (giving the increment ``inc``), adds the seed (giving ``u``) and
    steps again; each output steps once more. Every output's state ``A u + B inc`` is reached at once.
    """
    seed_high, seed_low, sequence_high, sequence_low = state
    increment_high = (sequence_high << _U64[1]) | (sequence_low >> _U64[63])
    increment_low = (sequence_low << _U64[1]) | _U64[1]
    start_low = increment_low + seed_low
    start_high = increment_high + seed_high + (start_low < increment_low)
    high = np.stack([start_high, increment_high])[:, None]  # [2, 1, n]: u, inc
    low = np.stack([start_low, increment_low])[:, None]
    factor_high, factor_low, factor_low_high = _PCG_JUMPS[count]  # [2, count, 1]: A, B
    shift = _U64[32]
    a0, a1 = low & _LOW32, low >> shift  # the 128-bit products A u and B inc, from 32-bit halves of the low words
    p00, p01, p10 = a0 * factor_low, a0 * factor_low_high, a1 * factor_low
    middle = (p00 >> shift) + (p01 & _LOW32) + (p10 & _LOW32)
    product_low = (p00 & _LOW32) | (middle << shift)
    product_high = (a1 * factor_low_high + (p01 >> shift) + (p10 >> shift) + (middle >> shift)
                    + high * (factor_low | (factor_low_high << shift)) + low * factor_high)
    low = product_low[0] + product_low[1]
    high = product_high[0] + product_high[1] + (low < product_low[0])
    folded, rotation = high ^ low, high >> _U64[58]  # XSL-RR output
    return (folded >> rotation) | (folded << ((_U64[64] - rotation) & _U64[63]))


def _uniform(output: np.ndarray) -> np.ndarray:
    """``Generator.random()`` from a 64-bit output: its top 53 bits."""
    return (output >> _U64[11]).astype(np.float64) * (1.0 / 9007199254740992.0)
