"""Each baseline end to end on the tiny pipeline, side by side with its authors' procedure (ports in tests/reference).

Every method's store is made once (``published``: its published knobs, the tiny model's 32 px,
one synthetic image per real image, batch 1; test_batching.py runs other rates and batches).
The authors' samplers are then run on the same real images with the same draws (scripted into
their ``random`` / ``np.random`` calls from our records) and the same per-image
``torch.Generator`` seeds. At batch 1 in float32 the arithmetic is the same, so the images are
compared bit for bit; the labels, read back the way each codebase reads them, too. The one
tolerance: Diff-Mix's soft label is summed in float32 by its trainer (``torch.zeros`` += ...)
and in float64 here, which can differ in the last float32 bit when the source and target
classes are one.
"""

import numpy as np
import pytest
import torch

from diffii_datasets.diffusion.generator import class_seed
from diffii_datasets.methods import get_method
from diffii_datasets.methods.real_gen import draw_real_gen
from diffii_datasets.methods.soft_labels import DEFAULT_GAMMA
from diffii_datasets.testing import tiny_pipeline
from tests.methods.helpers import METACLASS, PER_CLASS, AuthorsView, Scripted, stored
from tests.reference.da_fusion import RealGuidance, TextualInversion
from tests.reference.da_fusion_generate import compose, generate_augmentations
from tests.reference.diff_mix import DreamboothLoraMixup, RealGeneration
from tests.reference.diff_mix_sample import aug_strength_of, draw_tasks, meta_rows, sample_task
from tests.reference.diffmix_train_soft_label import get_syn_label

DIFF_MIX_METHODS = ("real-mix", "diff-aug", "diff-mix")


def seeded(seed):
    return [torch.Generator().manual_seed(seed)]


def authors_pipe(augmented):
    """A fresh tiny pipeline with the run's concepts applied, as the authors' augmenters load them."""
    pipe = tiny_pipeline(seed=0)
    if augmented.store.method.concepts:
        augmented.concepts.apply(pipe)
    return pipe


# -- what every run makes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["real-gen", "real-guidance", "da-fusion", "real-mix", "diff-aug", "diff-mix"])
def test_a_run_makes_expansion_rate_images_per_real_image_with_provenance(published, dataset, method):
    augmented = published(method)
    config, store = augmented.config, augmented.store
    assert store.header.method == method and store.manifest() is not None
    rate = int(config.expansion_rate)
    records = [record for record, _ in stored(augmented)]
    assert [r.label for r in records] == [c for c, n in enumerate(PER_CLASS) for _ in range(rate * n)]
    assert [r.index for r in records] == [i for n in PER_CLASS for i in range(rate * n)]
    inter = get_method(method).soft_labels  # the methods that mix classes
    for record, (image, target) in zip(records, augmented.synthetic):
        assert record.seed is not None and record.lam is None and record.suffix == "" and record.score is None
        if method == "real-gen":
            assert record.source_indices == () and record.strength is None
        else:
            (source,) = record.source_indices
            assert 0 <= source < PER_CLASS[record.label] and record.strength in config.strengths
            assert image.size == dataset[AuthorsView(dataset).index_of(record.label, source)][0].size
        assert (record.target is not None) == inter
        if inter:
            assert torch.equal(target, torch.tensor(get_method(method).soft_label(record, 3, DEFAULT_GAMMA)))
            assert target.dtype == torch.float32 and float(target.sum()) == pytest.approx(1.0)
        else:
            assert target == record.label
    if inter:  # targets are drawn over all classes, the source's own among them
        assert any(r.target != r.label for r in records)
    if getattr(config, "sources", None) == "each":  # every real image in turn, expansion_rate times
        assert [r.source_indices[0] for r in records] == [j for n in PER_CLASS for j in range(n) for _ in range(rate)]


def test_each_method_has_its_own_store(published):
    stores = {method: published(method).store for method in
              ("real-gen", "real-guidance", "da-fusion", "real-mix", "diff-aug", "diff-mix")}
    assert len({store.path for store in stores.values()}) == len(stores)
    assert all(store.header.method == method for method, store in stores.items())


def test_methods_share_their_draws_image_by_image(published):
    """Seeds first, then sources, strengths and targets: image k draws alike in every method (common random
    numbers), so a Diff-Mix image whose target is its own class is the Diff-Aug image of the same index."""
    runs = {method: stored(published(method)) for method in ("real-gen", "real-mix", "diff-aug", "diff-mix")}
    seeds = {method: [record.seed for record, _ in run] for method, run in runs.items()}
    assert seeds["real-gen"] == seeds["real-mix"] == seeds["diff-aug"] == seeds["diff-mix"]
    sources = {method: [record.source_indices for record, _ in runs[method]] for method in ("real-mix", "diff-mix")}
    assert sources["real-mix"] == sources["diff-mix"] == [record.source_indices for record, _ in runs["diff-aug"]]
    same = [(mix, aug) for (mix, _), (aug, _) in zip(runs["diff-mix"], runs["diff-aug"]) if mix.target == mix.label]
    assert same and all(mix.sha256 == aug.sha256 for mix, aug in same)
    other = [(mix, aug) for (mix, _), (aug, _) in zip(runs["diff-mix"], runs["diff-aug"]) if mix.target != mix.label]
    assert other and all(mix.sha256 != aug.sha256 for mix, aug in other)


def test_diff_aug_and_diff_mix_use_the_same_learned_concepts(published):
    aug, mix = published("diff-aug"), published("diff-mix")
    assert aug.store.header.concepts == mix.store.header.concepts != published("da-fusion").store.header.concepts
    assert aug.concepts.lora_rank > 0 and published("da-fusion").concepts.lora_rank == 0


# -- side by side with Diff-Mix's sample_mp.py ---------------------------------------------------------------------


@pytest.mark.parametrize("method", DIFF_MIX_METHODS)
def test_edits_and_labels_match_diff_mix_s_sampler(published, dataset, method):
    augmented = published(method)
    records = stored(augmented)
    view = AuthorsView(dataset, super_class=METACLASS)
    pipe = authors_pipe(augmented)
    concepts = augmented.concepts if get_method(method).concepts else None
    placeholders = {name: concepts.class_tokens(c) for c, name in enumerate(dataset.classes)} if concepts else None
    model = DreamboothLoraMixup(pipe.components, name2placeholder=placeholders)
    inter = get_method(method).inter_class
    labels = [record.label for record, _ in records]
    targets = [record.target if inter else record.label for record, _ in records]
    rng = Scripted(choices=[labels, targets] if inter else [labels],
                   samples=[i for (record, _), target in zip(records, targets)
                            for i in (view.index_of(target, 0), view.index_of(record.label, record.source_indices[0]))])
    (strength,) = augmented.config.strengths
    tasks = draw_tasks(rng, method, "fixed", strength, len(dataset.classes), len(records))
    names = []
    for task, (record, pixels) in zip(tasks, records):
        name, image = sample_task(rng, view, model, task, 32, seeded(record.seed))
        assert np.array_equal(np.asarray(image), pixels), (task, record)
        names.append(name)
    assert rng.exhausted()
    class2label = {name: c for c, name in enumerate(dataset.classes)}
    for row, (record, _), (_, served) in zip(meta_rows(names), records, augmented.synthetic):
        assert class2label[row["First Directory"]] == record.label  # filed under the source class, as ours
        expected = get_syn_label(class2label[row["First Directory"]], class2label[row["Second Directory"]],
                                 row["Strength"], DEFAULT_GAMMA, len(dataset.classes))
        ours = served if inter else torch.nn.functional.one_hot(torch.tensor(served), 3).float()
        torch.testing.assert_close(ours, expected, atol=1e-7, rtol=0)


def test_real_gen_matches_diff_mix_s_sampler(published, dataset):
    augmented = published("real-gen")
    records = stored(augmented)
    view = AuthorsView(dataset)
    sizes = []  # the real image each image takes its size from: our draws, made again
    for c, n in enumerate(PER_CLASS):
        count = int(augmented.config.expansion_rate * n)
        draws = draw_real_gen(n, count, torch.Generator().manual_seed(class_seed(0, c)))
        assert draws.seeds == [record.seed for record, _ in records if record.label == c]
        sizes += [view.index_of(c, j) for j in draws.size_sources]
    labels = [record.label for record, _ in records]
    rng = Scripted(choices=[labels], samples=[i for label, size in zip(labels, sizes)
                                              for i in (view.index_of(label, 0), size)])
    tasks = draw_tasks(rng, "real-gen", "fixed", aug_strength_of("real-gen", 0.5), 3, len(records))
    model = RealGeneration(tiny_pipeline(seed=0).components)
    names = []
    for task, (record, pixels) in zip(tasks, records):
        name, image = sample_task(rng, view, model, task, 32, seeded(record.seed))
        assert np.array_equal(np.asarray(image), pixels)
        names.append(name)
    assert rng.exhausted()
    rows = meta_rows(names)
    assert [dataset.classes.index(row["First Directory"]) for row in rows] == labels
    assert all(row["First Directory"] == row["Second Directory"] and row["Strength"] == 1.0 for row in rows)


# -- side by side with DA-Fusion's generate_augmentations ----------------------------------------------------------


@pytest.mark.parametrize("method", ["real-guidance", "da-fusion"])
def test_edits_and_labels_match_da_fusion_s_generator(published, dataset, method):
    augmented = published(method)
    config = augmented.config
    repeats = int(config.expansion_rate)
    view = AuthorsView(dataset)
    by_task = {}  # (dataset index, repeat) -> our image: class c's image k edits its real image k // repeats
    for record, pixels in stored(augmented):
        by_task[(view.index_of(record.label, record.source_indices[0]), record.index % repeats)] = record, pixels
    order = sorted(by_task)  # generate_augmentations' product(range(len(dataset)), range(repeats))
    pipe = authors_pipe(augmented)
    if get_method(method).concepts:
        tokens = {name: augmented.concepts.class_tokens(c) for c, name in enumerate(dataset.classes)}
        factory = lambda s: TextualInversion(pipe.components, strength=s, resolution=32,  # noqa: E731
                                             format_name=tokens.__getitem__)
    else:
        factory = lambda s: RealGuidance(pipe.components, strength=s, resolution=32)  # noqa: E731
    rng = Scripted(choice=[config.strengths.index(by_task[task][0].strength) for task in order])
    augmenter = compose(factory, config.strengths, rng=rng)
    examples = generate_augmentations(view, augmenter, repeats, lambda idx, num: seeded(by_task[idx, num][0].seed))
    assert rng.exhausted() and len(order) == len(dataset) * repeats
    for idx, num in order:
        image, label = examples[idx][num]
        record, pixels = by_task[idx, num]
        assert label == record.label == dataset.targets[idx]
        assert np.array_equal(np.asarray(image), pixels), (idx, num)
