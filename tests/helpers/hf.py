"""Constants shared by the hf tests and their fixtures (tests/hf/conftest.py)."""

from tests.helpers.augment import FAST_CONFIG

# Three species with 3, 2 and 1 training images (the last one starts from noise), 2, 2 and 1 test images.
FAKE_CUB = {"001.Black_footed_Albatross": (3, 2), "002.Laysan_Albatross": (2, 2), "003.Sooty_Albatross": (1, 1)}
CLASS_NAMES = ["Black footed Albatross", "Laysan Albatross", "Sooty Albatross"]
# The wrapper tests' fast knobs with fewer UNet calls (what these tests check does not depend on
# them) and one synthetic image per real one; split_ratio stays the setting's.
FAST_KNOBS = {**{k: v for k, v in FAST_CONFIG.to_dict().items() if k not in ("seed", "model", "split_ratio")},
              "expansion_rate": 1.0, "inversion_steps": 2, "denoising_steps": 2}
