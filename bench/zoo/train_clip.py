"""Train the zoo's ``clip-proxy`` image tower against the locked MiniLM text tower (LiT,
Zhai et al. 2022, arXiv:2111.07991) on Fashion-MNIST train-split images captioned "a photo of a
{class}".

CLIP's loss (Radford et al. 2021, arXiv:2103.00020) is the symmetric cross-entropy over a batch's
image-caption pairs. Here a batch of 128 holds at most 10 distinct captions, so duplicates would be
false negatives; the loss is CLIP's image->text cross-entropy over the unique captions, which is the
cross-entropy of the logits ``logit_scale * image_emb @ class_text_emb.T`` over the 10 class texts.
The text->image direction is dropped (its targets are ambiguous with repeated captions), and with
the text tower locked its 10 embeddings are computed once.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from bench.clip_model import zero_shot_correct
from bench.data import FASHION_MNIST_CLASSES, caption, load_fashion_mnist
from bench.zoo.clip_proxy import ClipProxy, ImageTower, save_image_tower
from bench.zoo.training import publish_folder


@dataclass(frozen=True)
class ClipTrainConfig:
    seed: int = 0
    steps: int = 1200
    batch_size: int = 128
    learning_rate: float = 2e-3
    final_learning_rate: float = 2e-5
    weight_decay: float = 1e-4
    channels: tuple[int, ...] = (32, 64, 128)
    val_images: int = 2000


def train_clip_proxy(output: Path, config: ClipTrainConfig = ClipTrainConfig(), quiet: bool = False) -> dict:
    from bench.text_encoder import sentence_embeddings

    torch.manual_seed(config.seed)
    train = load_fashion_mnist("train")
    texts = sentence_embeddings([caption(label) for label in range(len(FASHION_MNIST_CLASSES))])
    tower = ImageTower(config.channels, texts.shape[1])
    optimizer = torch.optim.AdamW(tower.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    ratio = config.final_learning_rate / config.learning_rate
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * step / config.steps)))
    generator = torch.Generator().manual_seed(config.seed)
    progress = tqdm(range(config.steps), desc="train clip-proxy", disable=quiet)
    for _ in progress:
        index = torch.randint(0, len(train.labels), (config.batch_size,), generator=generator)
        images = torch.nn.functional.normalize(tower(train.images[index]), dim=-1)
        logits = tower.logit_scale.clamp(max=math.log(100)).exp() * images @ texts.T
        loss = torch.nn.functional.cross_entropy(logits, train.labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        progress.set_postfix(loss=f"{loss.item():.3f}", scale=f"{tower.logit_scale.exp().item():.1f}")

    tower.eval()
    val = load_fashion_mnist("val", config.val_images)
    accuracy = float(zero_shot_correct(ClipProxy(tower), val.images, val.labels, FASHION_MNIST_CLASSES).mean())
    publish_folder(output, lambda folder: save_image_tower(tower, folder))
    info = asdict(config)
    info["val_zero_shot_accuracy"] = accuracy
    info["logit_scale"] = float(tower.logit_scale.detach().exp())
    return info
