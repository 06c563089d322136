"""Port of Diff-Mix's sampling driver: its task draws, one task's sampling, and the meta table its labels come from.

Source: Zhicaiwww/Diff-Mix, commit a81337b (mirror: /work/.mirror/Zhicaiwww+Diff-Mix/repo),
``scripts/sample_mp.py``: ``check_args_valid`` (L28-45, the strength it forces), ``main``'s task
draws (L179-207), ``sample_func``'s loop body for one task (L81-133), and the ``meta.csv`` rows
(L244-263) that ``dataset/base.py`` reads the source class, target class and strength of a
synthetic image from (its soft label: tests/reference/diffmix_train_soft_label.py).

Edits from the original, every one:

- ``check_args_valid(args)`` -> ``aug_strength_of(sample_strategy, aug_strength)``: only its strength
  lines (``lora_path``/``embed_path`` concern weight loading, which the tests do themselves).
- ``main``'s draws -> ``draw_tasks(rng, sample_strategy, strength_strategy, aug_strength, num_classes,
  num_tasks)``: the module ``random`` -> an argument ``rng`` with the same ``choices`` method (the
  tests script it, so both sides see the same draws); ``len(train_dataset.class_names)`` ->
  ``num_classes``; the queue, ``config.yaml`` and processes dropped; returns the options list.
- ``sample_func``'s loop body -> ``sample_task(rng, train_dataset, model, option, resolution, generator)``
  for one task with ``--batch_size 1`` and ``--task vanilla`` (the published commands): ``random`` ->
  ``rng`` (``sample``); ``in_queue.get`` -> the ``option`` argument; the skip-if-exists check and
  ``image.save(save_path)`` -> the ``(save_name, image)`` pair is returned (``args.output_path`` and
  ``"data"`` dropped from the path); ``model(...)`` (an ``nn.Module`` call) -> ``model.forward(...,
  generator=generator)``: the global torch RNG -> a per-task ``torch.Generator`` list; ``print`` dropped.
- ``main``'s meta table -> ``meta_rows(save_names)``: the directory listing -> the given save names, in
  the order given; the ``pandas`` DataFrame -> a list of dicts with the same columns; the
  image validation (``Image.open``) dropped.
"""

import os
import re
from collections import defaultdict


def aug_strength_of(sample_strategy, aug_strength):
    if sample_strategy == "real-gen":
        aug_strength = 1
    elif sample_strategy == "diff-gen":
        aug_strength = 1
    return aug_strength


def draw_tasks(rng, sample_strategy, strength_strategy, aug_strength, num_classes, num_tasks):

    if sample_strategy in [
        "real-gen",
        "real-aug",
        "diff-aug",
        "diff-gen",
        "ti-aug",
    ]:
        source_classes = rng.choices(
            range(num_classes), k=num_tasks
        )
        target_classes = source_classes
    elif sample_strategy in ["real-mix", "diff-mix", "ti-mix"]:
        source_classes = rng.choices(
            range(num_classes), k=num_tasks
        )
        target_classes = rng.choices(
            range(num_classes), k=num_tasks
        )
    else:
        raise ValueError(f"Augmentation strategy {sample_strategy} not supported")

    if strength_strategy == "fixed":
        strength_list = [aug_strength] * num_tasks
    elif strength_strategy == "uniform":
        strength_list = rng.choices([0.3, 0.5, 0.7, 0.9], k=num_tasks)

    options = zip(range(num_tasks), source_classes, target_classes, strength_list)
    return list(options)


def sample_task(rng, train_dataset, model, option, resolution, generator):
    index_list = []
    source_label_list = []
    target_label_list = []
    strength_list = []
    index, source_label, target_label, strength = option
    index_list.append(index)
    source_label_list.append(source_label)
    target_label_list.append(target_label)
    strength_list.append(strength)
    target_label = target_label_list[0]
    target_indice = rng.sample(train_dataset.label_to_indices[target_label], 1)[
        0
    ]
    target_metadata = train_dataset.get_metadata_by_idx(target_indice)
    target_name = target_metadata["name"].replace(" ", "_").replace("/", "_")

    source_images = []
    save_paths = []
    source_indices = [
        rng.sample(train_dataset.label_to_indices[source_label], 1)[0]
        for source_label in source_label_list
    ]
    for index, source_indice in zip(index_list, source_indices):
        source_images.append(train_dataset.get_image_by_idx(source_indice))
        source_metadata = train_dataset.get_metadata_by_idx(source_indice)
        source_name = source_metadata["name"].replace(" ", "_").replace("/", "_")
        save_name = os.path.join(
            source_name, f"{target_name}-{index:06d}-{strength}.png"
        )
        save_paths.append(save_name)

    image, _ = model.forward(
        image=source_images,
        label=target_label,
        strength=strength,
        metadata=target_metadata,
        resolution=resolution,
        generator=generator,
    )
    return save_paths[0], image[0]


def meta_rows(save_names):
    pattern_level_1 = r"(.+)"
    pattern_level_2 = r"(.+)-(\d+)-(.+).png"
    data_dict = defaultdict(list)
    for path in save_names:
        dir, file = os.path.split(path)
        match_1 = re.match(pattern_level_1, dir)
        first_dir = match_1.group(1).replace("_", " ")
        match_2 = re.match(pattern_level_2, file)
        second_dir = match_2.group(1).replace("_", " ")
        num = int(match_2.group(2))
        floating_num = float(match_2.group(3))
        data_dict["First Directory"].append(first_dir)
        data_dict["Second Directory"].append(second_dir)
        data_dict["Number"].append(num)
        data_dict["Strength"].append(floating_num)
        data_dict["Path"].append(os.path.join(dir, file))
    return [dict(zip(data_dict, row)) for row in zip(*data_dict.values())]
