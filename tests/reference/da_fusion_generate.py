"""Port of DA-Fusion's augmentation driver: which real image each synthetic image comes from, at which strength.

Source: brandontrabucco/da-fusion, HEAD (mirror: /work/.mirror/brandontrabucco+da-fusion/repo):
``semantic_aug/few_shot_dataset.py`` (``FewShotDataset.generate_augmentations``, L59-80),
``semantic_aug/augmentations/compose.py`` (``ComposeParallel``, L38-56) and
``train_classifier.py`` (``run_experiment``, L97-119: one augmenter per ``--strength``, composed).
The augmenters are tests/reference/da_fusion.py's ``RealGuidance`` and ``TextualInversion``.

Edits from the original, every one:

- ``generate_augmentations(self, num_repeats)`` -> a function of ``(dataset, generative_aug,
  num_repeats, generator)``: ``self`` -> ``dataset``, ``self.generative_aug`` -> ``generative_aug``;
  ``self.synthetic_examples`` -> a local ``defaultdict`` that is returned; the ``synthetic_dir``
  branch (saving PNGs) dropped (the tests compare images, not files); ``tqdm`` dropped; the
  augmenter call gets ``generator=generator(idx, num)`` (the global torch RNG -> a per-image
  ``torch.Generator``).
- ``ComposeParallel``: ``np.random.choice`` -> ``self.rng.choice`` with ``rng`` a constructor argument
  (default ``np.random``, the original's; the tests script it, so both sides see the same draws);
  ``forward`` takes and passes on ``generator``; the base class ``GenerativeAugmentation`` (an
  ``nn.Module``) -> a plain class, ``forward`` called directly.
- ``run_experiment``'s composition -> ``compose(augmenter_factory, strengths, probs, rng)``: one augmenter
  per strength, as its list comprehension builds them (the other per-augmenter arguments are the
  factory's), in the order given.
"""

from collections import defaultdict
from itertools import product

import numpy as np


def generate_augmentations(dataset, generative_aug, num_repeats, generator):

    synthetic_examples = defaultdict(list)
    options = product(range(len(dataset)), range(num_repeats))

    for idx, num in list(options):

        image = dataset.get_image_by_idx(idx)
        label = dataset.get_label_by_idx(idx)

        image, label = generative_aug(
            image, label, dataset.get_metadata_by_idx(idx), generator=generator(idx, num))

        synthetic_examples[idx].append((image, label))

    return synthetic_examples


class ComposeParallel:

    def __init__(self, augs, probs=None, rng=np.random):

        self.augs = augs
        self.probs = probs if probs is not None \
            else [1.0 / len(augs) for _ in augs]
        self.rng = rng

    def forward(self, image, label, metadata, generator=None):

        idx = self.rng.choice(len(self.probs), p=self.probs)

        image, label = self.augs[idx].forward(image, label, metadata, generator=generator)

        return image, label

    __call__ = forward


def compose(augmenter_factory, strengths, probs=None, rng=np.random):
    return ComposeParallel([augmenter_factory(strength) for strength in strengths], probs=probs, rng=rng)
