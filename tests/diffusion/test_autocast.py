"""The opt-in autocast knob of inversion and denoising: networks in bf16, latents in fp32, default unchanged."""

import pytest
import torch

from diffii_datasets import DiffIIConfig
from diffii_datasets.diffusion import GenerationConfig, ddim_invert, two_stage_denoise
from diffii_datasets.diffusion.pipeline import check_autocast_dtype, model_autocast
from diffii_datasets.testing import tiny_pipeline

PLAIN = "a photo of a red circle"
SUFFIXED = "a photo of a red circle on the grass."


def _latents(count=2, seed=0):
    return torch.randn(count, 4, 16, 16, generator=torch.Generator().manual_seed(seed))


def _images(count=2, seed=0):
    return torch.rand(count, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


class LinearDtypes:
    """Records the output dtype of every nn.Linear call inside a module."""

    def __init__(self, module):
        self.dtypes = set()
        self._handles = [m.register_forward_hook(lambda m, args, out: self.dtypes.add(out.dtype))
                         for m in module.modules() if isinstance(m, torch.nn.Linear)]

    def remove(self):
        for handle in self._handles:
            handle.remove()


def relative_error(actual, expected):
    return float((actual - expected).norm() / expected.norm())


def test_denoise_runs_the_unet_in_bf16_and_stays_close(tiny_pipe):
    reference = two_stage_denoise(tiny_pipe, _latents(), PLAIN, SUFFIXED, 0.3, num_inference_steps=4,
                                  output_type="latent")
    recorder = LinearDtypes(tiny_pipe.unet)
    try:
        result = two_stage_denoise(tiny_pipe, _latents(), PLAIN, SUFFIXED, 0.3, num_inference_steps=4,
                                   output_type="latent", autocast_dtype="bfloat16")
    finally:
        recorder.remove()
    assert recorder.dtypes == {torch.bfloat16}
    assert result.dtype == torch.float32  # latents stay float32 between steps
    assert 0 < relative_error(result, reference) < 0.05
    assert not torch.is_autocast_enabled("cpu")
    images = two_stage_denoise(tiny_pipe, _latents(), PLAIN, SUFFIXED, 0.3, num_inference_steps=2,
                               output_type="pt", autocast_dtype=torch.bfloat16)
    assert images.dtype == torch.float32 and 0 <= float(images.min()) and float(images.max()) <= 1


def test_default_is_the_pipelines_own_dtype(tiny_pipe):
    recorder = LinearDtypes(tiny_pipe.unet)
    try:
        first = two_stage_denoise(tiny_pipe, _latents(), PLAIN, SUFFIXED, 0.3, num_inference_steps=2,
                                  output_type="latent")
        second = two_stage_denoise(tiny_pipe, _latents(), PLAIN, SUFFIXED, 0.3, num_inference_steps=2,
                                   output_type="latent", autocast_dtype=None)
    finally:
        recorder.remove()
    assert recorder.dtypes == {torch.float32}
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_inversion_runs_the_unet_in_bf16_and_stays_close(tiny_pipe):
    reference = ddim_invert(tiny_pipe, _images(), PLAIN, num_inference_steps=5)
    unet, vae = LinearDtypes(tiny_pipe.unet), LinearDtypes(tiny_pipe.vae)
    try:
        result = ddim_invert(tiny_pipe, _images(), PLAIN, num_inference_steps=5, autocast_dtype="bfloat16")
    finally:
        unet.remove()
        vae.remove()
    # the VAE encodes once, in the pipeline's dtype: 200 steps build on its latent
    assert unet.dtypes == {torch.bfloat16} and vae.dtypes == {torch.float32}
    assert result.dtype == torch.float32
    # random tiny weights amplify rounding over the steps: autocast is as close as a whole bf16 pipeline gets
    bf16_pipeline = ddim_invert(tiny_pipeline(seed=0, torch_dtype=torch.bfloat16), _images(), PLAIN,
                                num_inference_steps=5)
    assert 0 < relative_error(result, reference) < 1.5 * relative_error(bf16_pipeline, reference) < 0.3


def test_generation_config_carries_the_knob():
    assert GenerationConfig().autocast_dtype is None
    assert DiffIIConfig().generation.autocast_dtype is None
    assert DiffIIConfig(autocast_dtype="bfloat16").generation.autocast_dtype == "bfloat16"
    assert DiffIIConfig.from_json(DiffIIConfig(autocast_dtype="float16").to_json()).autocast_dtype == "float16"
    assert DiffIIConfig(autocast_dtype="bfloat16").hash() != DiffIIConfig().hash()


@pytest.mark.parametrize("value", ["bf16", "float32", torch.bfloat16, 16])
def test_bad_values_name_the_field(value):
    with pytest.raises(ValueError, match="autocast_dtype must be None or one of"):
        GenerationConfig(autocast_dtype=value)
    with pytest.raises(ValueError, match="autocast_dtype"):
        DiffIIConfig(autocast_dtype=value)


def test_functions_take_names_or_dtypes(tiny_pipe):
    assert check_autocast_dtype(None) is None
    assert check_autocast_dtype("bfloat16") is torch.bfloat16
    assert check_autocast_dtype(torch.float16) is torch.float16
    with pytest.raises(ValueError, match="autocast_dtype must be None or one of"):
        check_autocast_dtype(torch.float32)
    with pytest.raises(ValueError, match="autocast_dtype"):
        two_stage_denoise(tiny_pipe, _latents(), PLAIN, SUFFIXED, 0.3, num_inference_steps=1, autocast_dtype="fp8")
    with pytest.raises(ValueError, match="autocast_dtype"):
        ddim_invert(tiny_pipe, _images(), PLAIN, num_inference_steps=1, autocast_dtype="int8")
    with model_autocast(tiny_pipe, None):
        assert not torch.is_autocast_enabled("cpu")
    with model_autocast(tiny_pipe, "bfloat16"):
        assert torch.is_autocast_enabled("cpu")
