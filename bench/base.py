"""The small base classes every plugin derives from: Attack (by surface), the defended Model (by
kind: Defense = autoencoder, TextToImage, Denoiser), Metric, Scenario.

Every plugin declares its hyperparameters as a frozen dataclass ``Config``; the resolved config
(defaults filled in) is recorded with each result. Images are float tensors (N, 3, H, W) in [0, 1]
everywhere; budgets are in [0, 1] pixel units; conversion to a model's own range happens inside the
model wrapper.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from bench.errors import NUMBER_HINT, BenchError

PIXEL_LEVELS = 255


@dataclass(frozen=True)
class NoConfig:
    pass


class Plugin:
    """Base of all plugins: a registry name, a code version and a frozen ``Config``."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    Config: ClassVar[type] = NoConfig

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()

    @classmethod
    def make_config(cls, params: dict[str, Any] | None = None) -> Any:
        """Build the Config from user parameters, with a clear error for unknown keys or bad values."""
        params = dict(params or {})
        fields = {f.name: f for f in dataclasses.fields(cls.Config)}
        for key in params:
            if key not in fields:
                close = difflib.get_close_matches(str(key), list(fields), n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(fields) or 'none'}"
                raise BenchError(f"{cls.name or cls.__name__}: unknown parameter {key!r}; {hint}")
        for key, value in list(params.items()):
            params[key] = _coerce(cls.name or cls.__name__, key, fields[key], value)
        try:
            return cls.Config(**params)
        except (TypeError, ValueError) as err:
            raise BenchError(f"{cls.name or cls.__name__}: {err}") from None

    def prepare(self, device: torch.device) -> Plugin:
        """Load whatever assets the plugin needs, so a missing or corrupt one fails before a run starts."""
        return self


def _coerce(owner: str, key: str, field: dataclasses.Field, value: Any) -> Any:
    default = field.default if field.default is not dataclasses.MISSING else None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise BenchError(f"{owner}: parameter {key!r} must be true or false, got {value!r}")
        return value
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            hint = f"; {NUMBER_HINT}" if isinstance(value, str) and "/" in value else ""
            raise BenchError(f"{owner}: parameter {key!r} must be a number, got {value!r}{hint}")
        if isinstance(default, int) and not float(value).is_integer():
            raise BenchError(f"{owner}: parameter {key!r} must be a whole number, got {value!r}")
        return type(default)(value)
    if isinstance(default, str) and not isinstance(value, str):
        raise BenchError(f"{owner}: parameter {key!r} must be a string (a name, path or text), got {value!r}; "
                         "quote it in the YAML")
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(value)
    return value


PIXEL_KEYS = frozenset({"eps", "sigma", "step_size"})
"""Parameters in [0, 1] pixel units; any other unit-interval parameter is a fraction (a rate, a strength)."""


def check_unit_interval(owner: str, key: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{key}={value!r} is not a number; {NUMBER_HINT}")
    if not 0.0 <= value <= 1.0:
        if key in PIXEL_KEYS:
            raise ValueError(f"{key}={value} is outside [0, 1]; budgets are in [0,1] pixel units (8/255 = 0.0314)")
        raise ValueError(f"{key}={value} is outside [0, 1]; {owner}'s {key} is a fraction")


MODEL_KINDS = ("autoencoder", "text-to-image", "denoiser")
"""What a defended model is (``Model.kind``); a scenario names the kinds it evaluates
(``Scenario.model_kinds``) and an attack the kind it differentiates (``Attack.differentiates``)."""


class Model(Plugin):
    """A defended model (a defense plugin), of one ``kind``: ``Defense`` (``autoencoder``),
    ``TextToImage`` (``text-to-image``) or ``Denoiser`` (``denoiser``).

    ``attack_view`` is what a white-box (adaptive) attacker differentiates: the model itself, or, for
    a defense with a non-differentiable or very costly step, a stated approximation of it (BPDA,
    Athalye et al. 2018, arXiv:1802.00420).
    """

    kind: ClassVar[str] = ""

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> Model:
        raise NotImplementedError

    def weights(self) -> dict[str, str]:
        """Files this model loaded, mapped to their sha256, for provenance."""
        return {}

    def check_images(self, images: torch.Tensor) -> None:
        """Refuse, before a run writes anything, images this model cannot take (``BenchError``)."""

    def attack_view(self) -> Model:
        return self

    def view_identity(self) -> dict[str, Any]:
        """What the attack view computes; two defenses with equal identities are attacked once."""
        return {"name": self.name, "config": dataclasses.asdict(self.config)}


class Defense(Model):
    """An autoencoder: images -> latents -> images (the VAEs, and the purifiers, which wrap one).
    ``encode`` returns the latent mean and must be differentiable, so white-box attacks can run
    against the defended model itself."""

    kind: ClassVar[str] = "autoencoder"

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> Defense:
        raise NotImplementedError

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(images))

    def attack_view(self) -> Defense:
        return self


Autoencoder = Defense


class TextToImage(Model):
    """Images from prompts and seeds, and img2img edits of images toward prompts; deterministic for a
    seed, images (N, 3, H, W) in [0, 1]."""

    kind: ClassVar[str] = "text-to-image"

    def generate(self, prompts: list[str], seed: int) -> torch.Tensor:
        raise NotImplementedError

    def edit(self, images: torch.Tensor, prompts: list[str], seed: int, strength: float | None = None) -> torch.Tensor:
        raise NotImplementedError


class LatentTextToImage(TextToImage):
    """A latent text-to-image model around an autoencoder, with what pixel attacks on its diffusion part
    differentiate: the autoencoder's ``encode`` / ``decode``, ``text_states``, ``diffusion_loss``
    (AdvDM / MIST) and a differentiable ``denoise`` (PhotoGuard); ``bench.editing.Editor``."""

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(images))

    def text_states(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def diffusion_loss(self, images: torch.Tensor, prompts: list[str], generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def denoise(self, images: torch.Tensor, prompts: list[str], generator: torch.Generator,
                steps: int | None = None) -> torch.Tensor:
        raise NotImplementedError


PixelTarget = Defense | LatentTextToImage
"""What a pixel attack differentiates: an autoencoder, or a latent text-to-image model around one."""


class Denoiser(Model):
    """A pixel or latent diffusion model: its training loss (per sample, for clean images, noise and
    timesteps drawn from ``generator``), its sampler, and ``denoise``: images noised to ``strength``
    of the schedule and sampled back (SDEdit; DiffPure's purification)."""

    kind: ClassVar[str] = "denoiser"

    def training_loss(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, n: int, seed: int, perturb: Callable | None = None) -> torch.Tensor:
        """n samples; ``perturb``, a ``SamplingAttack.hook``, may change each step's input x_t."""
        raise NotImplementedError

    def denoise(self, images: torch.Tensor, strength: float, seed: int) -> torch.Tensor:
        raise NotImplementedError


SURFACES = ("pixels", "prompts", "training-data", "sampling", "conditioning")
"""What an attack may perturb (``Attack.surface``) and a scenario may accept (``Scenario.surfaces``)."""


class Attack(Plugin):
    """Something an attacker changes, on one ``surface``: ``pixels`` (``PixelAttack``: test images in an
    L-inf ball), ``prompts`` (``PromptAttack``: list of strings -> list of strings), ``training-data``
    (``PoisoningAttack``: poisoned image-caption pairs for a training set), ``sampling``
    (``SamplingAttack``: the latents x_t of a sampling trajectory) or ``conditioning``
    (``ConditioningAttack``: the text encoder's token states of a prompt, before the denoiser sees them).
    ``budgets``: the config fields that are its budget, each a grid axis (``eps``; ``rate`` / ``edits``;
    ``count`` / ``ratio``; ``scale``; ``p``).

    ``uses_model``: False for model-free attacks (noise, typos, dirty labels), which have no threat model.
    ``differentiates()``: the model kind the attack is handed (``MODEL_KINDS``): ``autoencoder``
    (``Defense``) or ``text-to-image`` (``LatentTextToImage``, e.g. ``bench.editing.Editor``); None for
    a model-free attack; the grid refuses a scenario that cannot provide it. ``objective`` scores adversarial images on a model, higher
    meaning a more successful attack; the adaptive threat model uses it to keep, per image, the
    stronger of the white-box and the transferred perturbation.
    """

    surface: ClassVar[str] = ""
    budgets: ClassVar[tuple[str, ...]] = ()
    uses_model: ClassVar[bool] = True

    def differentiates(self) -> str | None:
        return "autoencoder" if self.uses_model else None

    def objective(self, model: Model, adversarial: torch.Tensor, clean: torch.Tensor, seed: int) -> torch.Tensor | None:
        """(N,) attack success on ``model`` (higher = stronger), or None where there is no objective."""
        return None

    def budget(self) -> dict[str, Any]:
        """The budget this attack was configured with (its ``budgets`` fields)."""
        return {key: getattr(self.config, key) for key in self.budgets if hasattr(self.config, key)}


@dataclass(frozen=True)
class AttackConfig:
    eps: float = 8 / 255

    def __post_init__(self):
        check_unit_interval("attack", "eps", self.eps)


class PixelAttack(Attack):
    """An L-inf bounded perturbation of test images. Subclasses implement ``perturb``; calling the
    attack also projects onto the eps-ball, clamps to [0, 1] and quantises to 8 bits (as a saved PNG
    would be), staying inside the ball after quantisation (``eps`` 1 leaves the L-inf ball
    unconstrained, for attacks with another budget)."""

    surface: ClassVar[str] = "pixels"
    budgets: ClassVar[tuple[str, ...]] = ("eps",)
    Config: ClassVar[type] = AttackConfig

    def perturb(self, model: PixelTarget, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, model: PixelTarget, images: torch.Tensor, seed: int) -> torch.Tensor:
        generator = torch.Generator(device="cpu").manual_seed(seed)
        with torch.enable_grad():
            adversarial = self.perturb(model, images, generator).detach()
        return quantise_into_ball(adversarial, images, self.config.eps)


@dataclass(frozen=True)
class PromptAttackConfig:
    """``edits``: character edits per prompt; where 0, ``rate``: the fraction of each prompt's
    characters edited (rounded)."""

    rate: float = 0.1
    edits: int = 0

    def __post_init__(self):
        check_unit_interval("attack", "rate", self.rate)
        if self.edits < 0:
            raise ValueError(f"edits={self.edits} must be 0 (use rate) or more")


class PromptAttack(Attack):
    """Perturbs prompts: ``perturb_prompts(prompts, generator) -> prompts``, seeded per batch."""

    surface: ClassVar[str] = "prompts"
    budgets: ClassVar[tuple[str, ...]] = ("rate", "edits")
    Config: ClassVar[type] = PromptAttackConfig
    uses_model: ClassVar[bool] = False

    def perturb_prompts(self, prompts: list[str], generator: torch.Generator) -> list[str]:
        raise NotImplementedError

    def __call__(self, prompts: list[str], seed: int) -> list[str]:
        generator = torch.Generator(device="cpu").manual_seed(seed)
        perturbed = list(self.perturb_prompts(list(prompts), generator))
        if len(perturbed) != len(prompts) or not all(isinstance(p, str) for p in perturbed):
            raise ValueError(f"{self.name}: perturb_prompts must return one string per prompt")
        return perturbed


@dataclass(frozen=True)
class PoisonConfig:
    """``count`` poisoned samples; where 0, ``ratio`` of the training set (rounded). ``eps``: the pixel
    budget where the attack also perturbs images (0: images unchanged)."""

    count: int = 0
    ratio: float = 0.1
    eps: float = 0.0

    def __post_init__(self):
        check_unit_interval("attack", "ratio", self.ratio)
        check_unit_interval("attack", "eps", self.eps)
        if self.count < 0:
            raise ValueError(f"count={self.count} must be 0 (use ratio) or more")

    def poison_count(self, n: int) -> int:
        return min(n, self.count or round(self.ratio * n))


@dataclass
class Poison:
    """Poisoned training pairs: ``indices`` of the clean training samples they substitute, their
    ``images`` (N,3,H,W) in [0, 1] and ``captions``."""

    indices: torch.Tensor
    images: torch.Tensor
    captions: list[str]


class PoisoningAttack(Attack):
    """Poisons a training set: ``poison(images, captions, labels, generator, model) -> Poison``, the pairs
    to substitute for the clean ones at ``indices``; seeded. A model-free poison (``uses_model`` False,
    dirty labels) gets ``model=None``; one that optimises its images against the model under attack
    (Nightshade) sets ``uses_model`` and is handed the model of the kind ``differentiates()`` names
    (e.g. a ``LatentTextToImage``: its autoencoder's ``encode`` and its ``generate``)."""

    surface: ClassVar[str] = "training-data"
    budgets: ClassVar[tuple[str, ...]] = ("count", "ratio")
    Config: ClassVar[type] = PoisonConfig
    uses_model: ClassVar[bool] = False

    def poison(self, images: torch.Tensor, captions: list[str], labels: torch.Tensor,
               generator: torch.Generator, model: Model | None = None) -> Poison:
        raise NotImplementedError

    def __call__(self, images: torch.Tensor, captions: list[str], labels: torch.Tensor, seed: int,
                 model: Model | None = None) -> Poison:
        if self.uses_model and model is None:
            raise BenchError(f"{self.name}: this poison is optimised against the model under attack, and none was "
                             f"handed to it; run it in a scenario that hands it the {self.differentiates()} model "
                             "(e.g. poisoning)")
        generator = torch.Generator(device="cpu").manual_seed(seed)
        poison = self.poison(images, list(captions), labels, generator, model)
        if len(poison.indices) != len(poison.images) or len(poison.images) != len(poison.captions):
            raise ValueError(f"{self.name}: a Poison needs as many images and captions as indices")
        if self.config.eps < 1 and len(poison.indices):
            poison.images = quantise_into_ball(poison.images, images[poison.indices], self.config.eps)
        return poison


def uniform_start(images: torch.Tensor, eps: float, generator: torch.Generator, random: bool = True) -> torch.Tensor:
    """PGD's starting perturbation: uniform in the L-inf ball (zero when not ``random``), kept in [0, 1]."""
    if not random:
        return torch.zeros_like(images)
    delta = ((torch.rand(images.shape, generator=generator) * 2 - 1) * eps).to(images.device)
    return ((images + delta).clamp(0, 1) - images).detach()


def signed_step(delta: torch.Tensor, gradient: torch.Tensor, step_size: float, images: torch.Tensor,
                eps: float) -> torch.Tensor:
    """One signed-gradient step ``delta + step_size * sign(gradient)``, projected onto the eps-ball
    and onto [0, 1]; pass the negated gradient to descend."""
    delta = (delta.detach() + step_size * gradient.sign()).clamp(-eps, eps)
    return (images + delta).clamp(0, 1) - images


def quantise_into_ball(adversarial: torch.Tensor, clean: torch.Tensor, eps: float) -> torch.Tensor:
    """Round to the 8-bit grid, keeping every pixel within eps of ``clean`` and inside [0, 1]."""
    levels = torch.round(adversarial * PIXEL_LEVELS)
    low = torch.ceil((clean - eps) * PIXEL_LEVELS - 1e-4).clamp(min=0)
    high = torch.floor((clean + eps) * PIXEL_LEVELS + 1e-4).clamp(max=PIXEL_LEVELS)
    return torch.minimum(torch.maximum(levels, low), high) / PIXEL_LEVELS


class Metric(Plugin):
    """A quality measure. ``paired`` metrics give one value per sample from (images, references);
    ``set`` metrics compare two sets through per-sample features; ``text``: ``per_sample_text(images,
    captions) -> (N,)``, ``label``: ``per_sample_labels(images, labels, class_names) -> (N,)``."""

    higher_is_better: ClassVar[bool] = True
    kind: ClassVar[str] = "paired"
    feature_space: ClassVar[str] = ""
    nan_meaningful: ClassVar[bool] = False
    """True where a NaN value means something (it is counted and reported); else a NaN fails the cell."""

    def per_sample(self, images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def network_digests(self) -> dict[str, str]:
        """The sha256 of the network weights the metric computes with (its pinned assets), so a
        value cached across runs (``bench.feature_cache``) is keyed by the network, not its name."""
        return {}

    def features(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def from_features(self, features: torch.Tensor, reference_features: torch.Tensor) -> float:
        raise NotImplementedError


class Scenario(Plugin):
    """How a cell is evaluated: which images go through which model, and what is measured.
    ``model_kinds``: the kinds of defended model it evaluates (the grid refuses a defense of another);
    ``surfaces``: the attack surfaces it accepts (the grid refuses any other attack);
    ``provides(kind)``: the model kinds it can hand an attack (``Attack.differentiates``) on a defense of
    that kind (by default the defense itself; img2img-edit also builds a text-to-image model around an
    autoencoder).
    ``run(context: bench.scenario_api.CellContext) -> bench.scenario_api.ScenarioResult``."""

    metric_kinds: ClassVar[tuple[str, ...]] = ("paired", "set")
    model_kinds: ClassVar[frozenset[str]] = frozenset({"autoencoder"})
    surfaces: ClassVar[frozenset[str]] = frozenset({"pixels"})

    @classmethod
    def provides(cls, defense_kind: str) -> frozenset[str]:
        return frozenset({defense_kind})

    def run(self, context: Any) -> Any:
        raise NotImplementedError

    def check_data(self, images: Any) -> None:
        """Refuse, before anything is written, an image set the scenario cannot evaluate."""

    def check_cell(self, context: Any) -> None:
        """Refuse, before anything is written, a cell the scenario cannot evaluate (e.g. an attack budget
        its data cannot meet); ``BenchError``."""

    def attack_model(self, context: Any, defense: Model) -> Model:
        """What an attack targeting ``defense`` is handed (white-box), of the kind it differentiates."""
        return defense.attack_view()

    def attack_model_identity(self, context: Any, defense: Model) -> dict[str, Any]:
        return defense.view_identity()

    def evaluation_model(self, context: Any, defense: Model) -> Model:
        """The defended system as the scenario evaluates it (objectives of adaptive selection)."""
        return defense


@dataclass(frozen=True)
class SamplingAttackConfig:
    """``scale``: the perturbation's size per element in the diffusion model's own latent units (the
    scaled latents it was trained on, of unit variance; not a pixel budget: there is no pixel here).
    Attacked are the inputs x_t of the sampler's steps at positions p (1 .. steps - 1; the first
    step's input is the initial noise) with ``start`` <= p / steps < ``stop``."""

    scale: float = 0.1
    start: float = 0.0
    stop: float = 1.0

    def __post_init__(self):
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)) or not math.isfinite(self.scale) \
                or self.scale < 0:
            raise ValueError(f"scale={self.scale!r} must be a finite number >= 0 (latent units)")
        if not 0 <= self.start < self.stop <= 1:
            raise ValueError(f"start={self.start}, stop={self.stop}: need 0 <= start < stop <= 1 "
                             "(fractions of the sampling trajectory)")

    def attacks(self, position: int, steps: int) -> bool:
        return self.scale > 0 and 0 < position < steps and self.start <= position / steps < self.stop


@dataclass(frozen=True)
class SamplerStep:
    """What a sampler tells a sampling attack about the step x_t enters: ``predict_noise(x)``, its
    (guided) noise prediction, differentiable in x; ``noise_std``, sqrt(1 - alpha_bar_t), the std of the
    noise x_t carries (so x_t + delta carries delta / noise_std more of it)."""

    predict_noise: Callable[[torch.Tensor], torch.Tensor]
    noise_std: float


class SamplingAttack(Attack):
    """Perturbs a sampling trajectory: ``perturb_latents(latents, step, generator)`` returns the perturbed
    x_t. ``hook(seed)`` is what a model's sampler calls with (x_t, position, steps, ``SamplerStep``)
    before each step; it applies the attack at the steps the config selects."""

    surface: ClassVar[str] = "sampling"
    budgets: ClassVar[tuple[str, ...]] = ("scale",)
    Config: ClassVar[type] = SamplingAttackConfig

    def differentiates(self) -> None:
        return None  # an adversarial one differentiates the sampler's own prediction, handed to it per step

    def perturb_latents(self, latents: torch.Tensor, step: SamplerStep, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def hook(self, seed: int) -> Callable[[torch.Tensor, int, int, SamplerStep], torch.Tensor]:
        generator = torch.Generator(device="cpu").manual_seed(seed)

        def apply(latents: torch.Tensor, position: int, steps: int, step: SamplerStep) -> torch.Tensor:
            if not self.config.attacks(position, steps):
                return latents
            with torch.enable_grad():
                return self.perturb_latents(latents, step, generator).detach()
        return apply


@dataclass(frozen=True)
class ConditioningAttackConfig:
    """``p``: the fraction of the prompt states' token positions the attack may change (how an attack
    counts positions is its own; AELIF's: int((L - 2) * p) of the L - 2 inner ones)."""

    p: float = 0.1

    def __post_init__(self):
        check_unit_interval("attack", "p", self.p)


class ConditioningAttack(Attack):
    """Perturbs the text conditioning: ``perturb_states(states, generator)`` returns the perturbed token
    states (B, L, D) of a batch of prompts, as the text encoder produced them and before the denoiser
    reads them. ``hook(seed)`` is what a text-to-image model's ``generate(..., condition=)`` applies to
    each tensor of states its pipeline encodes (``bench.t2i.conditioned_encode_prompt``); one generator,
    seeded once per batch, serves every call of the hook, in order."""

    surface: ClassVar[str] = "conditioning"
    budgets: ClassVar[tuple[str, ...]] = ("p",)
    Config: ClassVar[type] = ConditioningAttackConfig
    uses_model: ClassVar[bool] = False

    def perturb_states(self, states: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def hook(self, seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
        generator = torch.Generator(device="cpu").manual_seed(seed)

        def apply(states: torch.Tensor) -> torch.Tensor:
            perturbed = self.perturb_states(states, generator)
            if perturbed.shape != states.shape:
                raise ValueError(f"{self.name}: perturb_states must keep the states' shape {tuple(states.shape)}, "
                                 f"got {tuple(perturbed.shape)}")
            return perturbed
        return apply
