"""docs/reproductions/ve-loss-examples.png: for each tokenizer's latent diffusion model, the ten class
captions generated (DDIM 25 steps, guidance 7.5, seed 0) unperturbed and with every step's input
x_t perturbed (sampling-noise at 0.2 and 0.4, sampling-pgd at 0.4), the same seed in every row.
Usage: ``python scripts/ve_examples.py OUT.png MODEL=LABEL ...`` (one torch thread is enough)."""

import sys

from bench.data import FASHION_MNIST_CLASSES, caption
from bench.plugins import ATTACKS, DEFENSES
from bench.zoo.show import save_labelled_grid

PERTURBATIONS = [("0", None, 0.0), ("n.2", "sampling-noise", 0.2), ("n.4", "sampling-noise", 0.4),
                 ("a.4", "sampling-pgd", 0.4)]  # row labels: unperturbed, noise 0.2 / 0.4, attack 0.4


def main(out: str, models: list[str]) -> None:
    prompts = [caption(c) for c in range(len(FASHION_MNIST_CLASSES))]
    rows = []
    for spec in models:
        pipeline, label = spec.split("=")
        model = DEFENSES.get("t2i")(DEFENSES.get("t2i").make_config({"pipeline": pipeline, "steps": 25}))
        for name, attack, scale in PERTURBATIONS:
            hook = None if attack is None else ATTACKS.get(attack)(ATTACKS.get(attack).make_config({"scale": scale})).hook(0)
            rows.append((f"{label} {name}", model.generate(prompts, seed=0, perturb=hook)))
    print(save_labelled_grid(rows, out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
