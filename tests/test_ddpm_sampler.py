"""``bench.zoo.train_ddpm.sample`` on a known data distribution: one fixed image.

The denoiser is that distribution's exact epsilon-predictor made 20% wrong (scaled up, plus noise),
as an under-trained network is. DDIM that re-derives epsilon from its clipped x0 still lands on the
image; the step that mixes the clipped x0 with the raw epsilon (diffusers' default) misses pixels by
the whole [0, 1] range, which is how ``ddpm-pixel``'s samples turned to speckle.
"""

import torch
from diffusers import ConfigMixin, DDIMPipeline, DDIMScheduler, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.models.unets.unet_2d import UNet2DOutput

from bench.zoo.train_ddpm import SCHEDULER_KWARGS, sample


class WrongByAFifth(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, sample_size: int = 8, in_channels: int = 3, error: float = 0.2):
        super().__init__()
        checker = torch.zeros(in_channels, sample_size, sample_size)
        checker[:, ::2, ::2] = 1
        self.register_buffer("image", checker * 2 - 1)
        self.register_buffer("alphas_cumprod", DDIMScheduler(**SCHEDULER_KWARGS).alphas_cumprod)

    def forward(self, noisy: torch.Tensor, timestep) -> UNet2DOutput:
        alpha = self.alphas_cumprod[int(timestep)]
        exact = (noisy - alpha.sqrt() * self.image) / (1 - alpha).sqrt()
        noise = torch.randn(noisy.shape, generator=torch.Generator().manual_seed(int(timestep)))
        return UNet2DOutput(sample=exact * (1 + self.config.error) + self.config.error * noise)


def test_sample_recovers_the_data_despite_a_wrong_epsilon():
    model = WrongByAFifth()
    pipe = DDIMPipeline(unet=model, scheduler=DDIMScheduler(**SCHEDULER_KWARGS, clip_sample=True))
    pipe.set_progress_bar_config(disable=True)
    images = sample(pipe, 4, batch_size=4)
    assert images.shape == (4, 3, 8, 8)
    assert (images - (model.image + 1) / 2).abs().max() <= 1 / 255 + 1e-6
