"""CLIP measures: the CLIP score is torchmetrics', the nearest-real similarities are brute-force maxima,
and a synthetic set copied from the real one scores as faithful as a set can."""

import pytest
import torch
import torchvision.transforms.functional as TF

from diffii_datasets.diffusion.prompts import build_prompt
from diffii_datasets.quality import ImageSets, evaluate
from diffii_datasets.quality.faithfulness import (
    clip_image_embeddings,
    clip_score,
    clip_text_embeddings,
    nearest_real_similarity,
)
from diffii_datasets.quality.settings import QualitySettings
from tests.quality.stores import class_images, shifted

FAST = QualitySettings(lpips_size=32, kid_subsets=3)


class TensorFeatures(torch.nn.Module):
    """The CLIP model as torchmetrics 1.9 calls it: features as tensors (transformers 5 returns output objects)."""

    def __init__(self, clip):
        super().__init__()
        self.clip, self.config = clip, clip.config

    def get_image_features(self, pixel_values):
        output = self.clip.get_image_features(pixel_values=pixel_values)
        return output if isinstance(output, torch.Tensor) else output.pooler_output

    def get_text_features(self, input_ids, attention_mask):
        output = self.clip.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
        return output if isinstance(output, torch.Tensor) else output.pooler_output


def test_clip_score_is_torchmetrics_clip_score(metric_models):
    from torchmetrics.multimodal.clip_score import CLIPScore

    names, real = class_images(2, 3)
    images, prompt = real[0] + real[1], build_prompt(names[0], "shape")
    metric = CLIPScore(model_name_or_path=lambda: (TensorFeatures(metric_models.clip), metric_models.clip_processor))
    metric.update([TF.pil_to_tensor(image) for image in images], [prompt] * len(images))
    ours = clip_score(clip_image_embeddings(metric_models, images, batch_size=4),
                      clip_text_embeddings(metric_models, [prompt])[0])
    assert ours > 0
    assert ours == pytest.approx(float(metric.compute()), abs=1e-4)


def test_clip_score_is_clamped_at_zero_and_none_without_images():
    text = torch.tensor([1.0, 0.0])
    assert clip_score(torch.tensor([[-1.0, 0.0], [0.6, 0.8]]), text) == 0.0
    assert clip_score(torch.tensor([[0.6, 0.8], [1.0, 0.0]]), text) == pytest.approx(80.0)
    assert clip_score(torch.zeros(0, 2), text) is None


def test_nearest_real_similarity_is_the_maximum_cosine_by_class():
    generator = torch.Generator().manual_seed(0)
    unit = [torch.nn.functional.normalize(torch.randn(n, 8, generator=generator), dim=1) for n in (3, 2, 4)]
    synthetic = torch.nn.functional.normalize(torch.randn(5, 8, generator=generator), dim=1)
    own, other = nearest_real_similarity(synthetic, unit, 1)
    for i, image in enumerate(synthetic):
        assert float(own[i]) == pytest.approx(max(float(image @ r) for r in unit[1]))
        assert float(other[i]) == pytest.approx(max(float(image @ r) for r in torch.cat([unit[0], unit[2]])))
    assert nearest_real_similarity(synthetic, unit[:1], 0)[1] is None  # no other class


def test_a_copy_of_the_real_set_is_as_faithful_as_possible(metric_models):
    names, real = class_images(3, 4)
    report = evaluate(ImageSets(names, "shape", real, [list(images) for images in real]), metric_models, FAST,
                      progress=False)
    for row in report.classes + [report.overall]:
        assert row.own_similarity == pytest.approx(1.0)
        assert row.own_nearest_share == 1.0
        assert row.other_similarity < 1.0
        assert row.clip_score == pytest.approx(row.clip_score_real)
        assert row.lpips_synthetic == pytest.approx(row.lpips_real)
        assert "drifted" not in row.flags and "collapsed" not in row.flags


def test_images_of_another_class_are_flagged_as_drifted_and_copies_as_collapsed(metric_models):
    names, real = class_images(3, 4)
    synthetic = [list(real[1]), [real[1][0]] * 4, [shifted(image, 3) for image in real[2]]]
    report = evaluate(ImageSets(names, "shape", real, synthetic), metric_models, FAST, progress=False)
    first, second, third = report.classes
    assert first.own_nearest_share == 0.0 and "drifted" in first.flags
    assert second.lpips_synthetic == 0.0 and "collapsed" in second.flags
    assert third.flags == ()
    text = clip_text_embeddings(metric_models, [build_prompt(names[2], "shape")])[0]
    assert third.clip_score == pytest.approx(clip_score(clip_image_embeddings(metric_models, synthetic[2]), text))
