"""The published recipes, the knob declarations, the paper's cells; all without torch."""

import subprocess
import sys

import pytest

from diffii_datasets.classify.paper import PUBLISHED, PaperCell, paper_cell, published_accuracy
from diffii_datasets.classify.recipes import Recipe, recipe_for, recipe_settings


@pytest.mark.parametrize("setting, lr", [("cub-5shot", 0.05), ("aircraft-10shot", 0.1), ("cars-5shot", 0.1),
                                         ("pet-10shot", 0.01)])
def test_few_shot_resnet50_recipes_are_the_published_ones(setting, lr):
    recipe = recipe_for(setting)
    assert (recipe.model, recipe.weights, recipe.image_size, recipe.resize) == ("resnet50", "IMAGENET1K_V1", 224, 256)
    assert (recipe.epochs, recipe.batch_size, recipe.lr) == (128, 256, lr)
    knobs = (recipe.momentum, recipe.weight_decay, recipe.label_smoothing, recipe.warmup_fraction)
    assert knobs == (0.9, 5e-4, 0.1, 0.1)
    assert (recipe.synthetic_probability, recipe.class_balanced, recipe.transforms) == (0.5, False, "few-shot")
    assert recipe.seed == 2020


@pytest.mark.parametrize("setting, lr", [("cub-10shot", 1e-3), ("pet-5shot", 1e-4)])
def test_few_shot_vit_recipes_are_the_published_ones(setting, lr):
    recipe = recipe_for(setting, backbone="vit_b_16")
    assert (recipe.model, recipe.weights, recipe.image_size, recipe.resize) == ("vit_b_16", "IMAGENET1K_SWAG_E2E_V1",
                                                                                384, 440)
    assert (recipe.epochs, recipe.batch_size, recipe.lr) == (100, 32, lr)


def test_long_tail_and_ood_recipes():
    recipe = recipe_for("flower-lt-if100")
    assert (recipe.epochs, recipe.batch_size, recipe.lr, recipe.transforms) == (200, 128, 0.005, "long-tail")
    assert recipe.class_balanced and recipe.synthetic_probability == 0.5
    assert recipe_for("waterbirds") == recipe_for("cub-5shot")
    with pytest.raises(ValueError, match="long-tail settings with resnet50 only"):
        recipe_for("cub-lt-if10", backbone="vit_b_16")
    with pytest.raises(ValueError, match="setting must be one of cub-5shot"):
        recipe_for("cub-7shot")
    assert len(recipe_settings()) == 16


def test_knobs_are_declared_once_and_checked():
    assert [knob.flag for knob in Recipe.knobs()][:3] == ["--model", "--weights", "--image-size"]
    recipe = Recipe().replace(synthetic_probability=0, weights="none")
    assert recipe.synthetic_probability == 0.0 and recipe.weights is None
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    with pytest.raises(ValueError, match="Recipe.synthetic_probability must be"):
        Recipe(synthetic_probability=1.5)
    with pytest.raises(TypeError, match="Recipe.epochs must be a positive int"):
        Recipe(epochs=2.0)
    with pytest.raises(TypeError, match="Recipe has no knob 'learning_rate'"):
        Recipe().replace(learning_rate=0.1)


def test_paper_cells_name_table_row_and_column():
    assert paper_cell("cub-5shot", "resnet50", baseline=False) == PaperCell("Table 1", "Ours", "ResNet-50, CUB, 5-shot")
    assert str(paper_cell("pet-10shot", "vit_b_16", baseline=True)) == \
        "Table 1, row Original, column ViT-B/16, Pet, 10-shot"
    assert paper_cell("cub-lt-if100", "resnet50", baseline=True) == PaperCell("Table 2", "CE", "CUB-LT, IF=100")
    assert paper_cell("waterbirds", "resnet50", baseline=False, group=2) == PaperCell("Table 3", "Ours", "(W, L)")
    assert paper_cell("cub-lt-if10", "vit_b_16", baseline=False) is None
    assert paper_cell("sample", "resnet50", baseline=False) is None
    assert published_accuracy(None) is None
    assert all(isinstance(cell, PaperCell) and 0 <= value <= 100 for cell, value in PUBLISHED.items())


def test_recipes_and_the_train_help_load_no_torch():
    code = ("import sys; from diffii_datasets.classify import recipe_for, paper_cell, diffmix_soft_label; "
            "recipe_for('cub-5shot'); diffmix_soft_label(0, 1, 0.5, 0.8, 3); "
            "from diffii_datasets.cli import build_parser; build_parser(); assert 'torch' not in sys.modules")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0


def test_every_classify_export_resolves():
    import diffii_datasets.classify as classify

    assert sorted(dir(classify)) == sorted(classify.__all__)
    assert all(getattr(classify, name) is not None for name in classify.__all__)


def test_mixing_and_batch_norm_knobs_are_off_in_every_published_recipe():
    recipe = Recipe()
    assert (recipe.mixup, recipe.cutmix, recipe.mixup_probability, recipe.bn_group_size) == (False, False, 0.3, None)
    for setting in recipe_settings():
        published = recipe_for(setting)
        assert not (published.mixup or published.cutmix) and published.bn_group_size is None, setting
    mixing = recipe.replace(mixup=True, cutmix=True, mixup_probability=0.5, bn_group_size=32)
    assert Recipe.from_dict(mixing.to_dict()) == mixing
    old = {name: value for name, value in recipe.to_dict().items()
           if name not in ("mixup", "cutmix", "mixup_probability", "bn_group_size")}
    assert Recipe.from_dict(old) == recipe  # a result.json written before these knobs
    with pytest.raises(ValueError, match="Recipe.bn_group_size must be"):
        Recipe(bn_group_size=0)
    with pytest.raises(ValueError, match="Recipe.mixup_probability must be"):
        Recipe(mixup_probability=1.5)
    with pytest.raises(TypeError, match="Recipe.cutmix"):
        Recipe(cutmix="yes")
