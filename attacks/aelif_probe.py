"""AELIF as a probe at inference (Martirosyan et al., "Evaluating Robustness in Latent Diffusion Models
via Embedding Level Augmentation", arXiv:2506.07706; reference code
github.com/Borismartirosyan/aelif_augmentation). Besides fine-tuning with it, the reference applied its
augmentation at inference to probe robustness, at percentages from 10% to 100%: the same prompt is
generated with and without augmented token states, from the same seed, and the two generations are
compared by the CLIP-based W1. This attack is that probe, on the ``conditioning`` surface: the prompt
is left as written and its token states (B, L, D), after the text encoder and before the denoiser, go
through ``defenses.aelif.aelif_augment``: ``mask`` zeroes int((L - 2) * p) inner positions,
``noise_conv`` multiplies them element-wise by noise from N(mean, std^2), positions drawn once per
call from the batch's seeded generator (the same for every sample of the batch).

At inference the hook augments the prompt states and then the negative (unconditional) prompt states
of classifier-free guidance from that one generator, as the reference's ``encode_prompt`` does; on
the embedded models (MiniLM, L = 16) p 0.1 changes 1 of the 14 inner positions, p 1 all 14.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.base import ConditioningAttack, ConditioningAttackConfig

AUGMENTATIONS = ("mask", "noise_conv")


@dataclass(frozen=True)
class AELIFProbeConfig(ConditioningAttackConfig):
    augmentation: str = "mask"
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(f"augmentation {self.augmentation!r}: use one of {', '.join(AUGMENTATIONS)}")
        if self.std < 0:
            raise ValueError(f"std={self.std} must be 0 or more (the noise's standard deviation)")


class AELIFProbe(ConditioningAttack):
    """The prompt states with AELIF's ``mask`` or ``noise_conv`` at inference.

    Arguments: ``augmentation`` (mask | noise_conv), ``p`` (the share of inner token positions changed;
    the budget, a grid axis), ``mean`` / ``std`` (noise_conv's noise; the reference's defaults 0 and 1).
    """

    name = "aelif-probe"
    Config = AELIFProbeConfig

    def perturb_states(self, states: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        from defenses.aelif import aelif_augment

        c = self.config
        return aelif_augment(states, c.augmentation, c.p, generator, c.mean, c.std)
