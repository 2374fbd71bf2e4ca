"""AELIF's distribution distance per prompt (arXiv:2506.07706; Borismartirosyan/aelif_augmentation,
``calculate_distance_between_distributions``): for one prompt, the CLIP image embeddings of its
generations across seeds from the clean and from the perturbed prompt, and
``scipy.stats.wasserstein_distance_nd`` between the two sets. The reference computes it one prompt
at a time; ``clip-w1-nd`` pools every prompt's generations into one set, which also counts the
spread between prompts, so this is the number comparable with the reference's. Reported as the mean
over prompts with a bootstrap interval over prompts (``n``: prompts with two or more generations).
Unnormalised ``encode_image`` embeddings as the reference's (``normalize: true`` L2-normalises).
Lower is better.
"""

from __future__ import annotations

from bench.metrics.clip_w1_nd import ClipW1ND
from bench.metrics.kinds import PromptSetMetric


class ClipW1NDPrompt(PromptSetMetric, ClipW1ND):
    name = "clip-w1-nd-prompt"
