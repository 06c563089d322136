"""Port of Diff-Mix's CLIP filter scoring and percentile split (reference for the side-by-side tests).

Source: Zhicaiwww/Diff-Mix, commit a81337b (mirror: /work/.mirror/Zhicaiwww+Diff-Mix/repo),
``scripts/filter_syn_data.py`` (``FILTER_CAPTIONS_MAPPING`` L12-30, ``main`` L56-102).

Edits from the original, every one:

- ``main(args)`` -> ``filter_scores(model, processor, images, dataset, batch_size)`` and
  ``split(positive_confidence)``: the model and processor are arguments instead of
  ``CLIPModel/CLIPProcessor.from_pretrained("openai/clip-vit-base-patch32", local_files_only=True)``
  (L59-64); the device is the model's instead of ``f"cuda:{args.gpu}"`` and ``.to(device)``.
- The ``SyntheticDataset`` + ``DataLoader(batch_size=bs, collate_fn=syn_collate_fn, shuffle=False,
  num_workers=4)`` loop (L65-74) -> consecutive slices of ``bs`` images of a given list of RGB PIL
  images (the dataset's ``Image.open(path).convert("RGB")`` with an identity transform gives these;
  the collate function passes them through as a list).
- ``tqdm`` progress bar removed.
- The CSV side (L95-102: read ``meta.csv`` from ``args.synthetic_dir``, an attribute the CLI never
  defines; write ``meta_10-100per.csv``, ``meta_0-10per.csv``, ``meta_90-100per.csv``) -> ``split``
  returns the three boolean row masks those files are written from.
"""

import numpy as np

FILTER_CAPTIONS_MAPPING = {
    "cub": ["a photo with a bird on it", "a photo without a bird on it"],
    "aircraft": [
        "a photo with an aricraft on it. ",
        "a photo without an aricraft on it. ",
    ],
    "dog": [
        "a photo with a dog on it. ",
        "a photo without a dog on it. ",
    ],
    "flower": [
        "a photo with a flower on it. ",
        "a photo without a flower on it. ",
    ],
    "car": [
        "a photo with a car on it. ",
        "a photo without an car on it. ",
    ],
}


def filter_scores(model, processor, images, dataset, batch_size=200):
    device = model.device
    bs = batch_size
    positive_confidence = []

    for start in range(0, len(images), bs):

        images_batch = images[start:start + bs]
        inputs = processor(
            text=FILTER_CAPTIONS_MAPPING[dataset],
            images=images_batch,
            return_tensors="pt",
            padding=True,
        ).to(device)

        outputs = model(**inputs)
        logits_per_image = (
            outputs.logits_per_image
        )  # this is the image-text similarity score
        probs = logits_per_image.softmax(
            dim=1
        )  # we can take the softmax to get the label probabilities
        probs = probs.cpu().detach().numpy()
        positive_confidence = np.concatenate((positive_confidence, probs[:, 0]))
    return positive_confidence


def split(positive_confidence):
    # filter the least 10% confident samples
    positive_confidence = np.array(positive_confidence)
    bottom_threshold = np.percentile(positive_confidence, 10)
    up_threshold = np.percentile(positive_confidence, 90)
    kept = positive_confidence >= bottom_threshold  # meta_10-100per.csv
    dropped = positive_confidence < bottom_threshold  # meta_0-10per.csv
    top = positive_confidence >= up_threshold  # meta_90-100per.csv
    return kept, dropped, top
