"""Build a LLaVA from parts: a CLIP / SigLIP vision tower + LLaVA's projector + a causal LM, as transformers'
``LlavaForConditionalGeneration`` with a matching ``LlavaProcessor``.

The projector is LLaVA-1.5's ``mlp2x_gelu`` (the "MLP" the ultra-detailed caption paper's Tables 7-8 train in
every stage; transformers' ``LlavaMultiModalProjector``)::

    H_v = Linear(d_text -> d_text)(GELU(Linear(d_vision -> d_text)(Z_v)))

where ``Z_v`` are the vision tower's hidden states at ``vision_feature_layer`` (LLaVA-1.5: -2, the penultimate
layer), CLIP's CLS token dropped ("default" strategy) or every SigLIP patch kept ("full"). Each image becomes
``(image_size / patch_size)^2`` image tokens; the processor expands one ``<image>`` in the text to that many.
The vision tower and LM keep their pretrained weights (the loaded modules themselves); the projector is a seeded
random init. A tied LM's output embedding is copied into the LLaVA's ``lm_head`` (the LLaVA is untied).
``save_pretrained`` of model and processor writes a folder that ``AutoModelForImageTextToText`` /
``AutoProcessor`` load (vLLM reads the same LLaVA layout; not tested here).
"""

from __future__ import annotations

import copy

import torch
from transformers import (
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

from vlforge.common.errors import VLForgeError
from vlforge.common.lm.loading import dtype_of
from vlforge.common.presets.chat_templates import chat_template as default_chat_template
from vlforge.vlm.mllm.lm_source import load_causal_lm
from vlforge.vlm.mllm.vision_source import load_vision_tower, random_vision_tower

STRATEGIES = ("default", "full")


def image_token_count(image_size: int, patch_size: int, family: str, strategy: str) -> int:
    """Image tokens per image: one per patch, plus CLIP's CLS token unless the "default" strategy drops it."""
    patches = (image_size // patch_size) ** 2
    return patches + (1 if family == "clip" else 0) - (1 if strategy == "default" else 0)


def ensure_special_tokens(tokenizer: PreTrainedTokenizerBase, image_token: str) -> int:
    """Add ``image_token`` (and a ``<pad>`` token when the tokenizer has none) as special tokens; returns how many
    tokens were added."""
    added = 0
    if image_token not in tokenizer.get_vocab():
        added += tokenizer.add_tokens([image_token], special_tokens=True)
    if tokenizer.pad_token is None:
        added += tokenizer.add_special_tokens({"pad_token": "<pad>"})
    return added


def assemble(config: LlavaConfig, vision_model: torch.nn.Module, language_model: PreTrainedModel,
             seed: int) -> LlavaForConditionalGeneration:
    """A ``LlavaForConditionalGeneration`` of ``config`` holding the loaded vision model and LM themselves (no
    random init of a 7B model to overwrite): built on the meta device, its vision tower, language model and head
    replaced by the loaded modules, its projector a fresh seeded ``LlavaMultiModalProjector`` (PyTorch's default
    Linear init, as LLaVA's own ``nn.Sequential`` projector)."""
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    model.model.vision_tower = vision_model
    model.model.language_model = language_model.base_model
    head = language_model.get_output_embeddings()
    if head.weight is language_model.get_input_embeddings().weight:  # tied: the LLaVA gets its own copy
        head = copy.deepcopy(head)
    model.lm_head = head
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.model.multi_modal_projector = LlavaMultiModalProjector(config)
    left = [name for name, tensor in [*model.named_parameters(), *model.named_buffers()] if tensor.is_meta]
    if left:
        raise VLForgeError(f"the LLaVA assembly left {left[0]!r} unset")
    return model


def build_llava(vision: str, lm: str, *, trust_remote_code: bool = False, vision_feature_layer: int = -2,
                vision_feature_select_strategy: str | None = None, projector_hidden_act: str = "gelu",
                image_token: str = "<image>", chat_template: str | None = None, dtype: str = "float32",
                seed: int = 0, vision_config: dict | None = None,
                ) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """``(LlavaForConditionalGeneration, LlavaProcessor)`` from vision tower ``vision`` (a CLIP / SigLIP folder or
    hub name) and causal LM ``lm`` (``preset:<name>``, a folder or a hub name).

    Options: ``trust_remote_code`` (off); ``vision_feature_layer`` (-2, LLaVA-1.5's); ``vision_feature_select_
    strategy`` ("default" drops CLIP's CLS token, "full" keeps every token; default: "default" for CLIP, "full" for
    SigLIP, which has no CLS token); ``projector_hidden_act``; ``image_token``; ``chat_template`` (default: the
    USER/ASSISTANT template of vlforge's presets, the image placed in the user turn); ``dtype``; ``seed`` (the
    projector's init, drawn without touching the global RNG); ``vision_config``: with ``vision`` "clip" or
    "siglip", a randomly initialised tower of these config fields (seeded by ``seed``; tiny runs).
    """
    torch_dtype = dtype_of(dtype)
    if vision_config is not None:
        tower = random_vision_tower(vision, vision_config, torch_dtype, seed)
    else:
        tower = load_vision_tower(vision, trust_remote_code=trust_remote_code, dtype=torch_dtype)
    strategy = vision_feature_select_strategy or ("default" if tower.family == "clip" else "full")
    if strategy not in STRATEGIES:
        raise VLForgeError(f"vision_feature_select_strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    if tower.family == "siglip" and strategy == "default":
        raise VLForgeError(f"vision {vision!r}: SigLIP has no CLS token to drop; use "
                           "vision_feature_select_strategy 'full'")
    layers = tower.model.config.num_hidden_layers
    if not -layers - 1 <= vision_feature_layer <= layers:
        raise VLForgeError(f"vision_feature_layer {vision_feature_layer} is outside the {layers}-layer tower "
                           f"{vision!r} (hidden states -{layers + 1}..{layers})")
    language_model, tokenizer = load_causal_lm(lm, trust_remote_code=trust_remote_code, dtype=torch_dtype)
    if ensure_special_tokens(tokenizer, image_token):
        language_model.resize_token_embeddings(len(tokenizer))
    vision_config = tower.model.config
    count = image_token_count(vision_config.image_size, vision_config.patch_size, tower.family, strategy)
    text_config = copy.deepcopy(language_model.config)
    text_config.tie_word_embeddings = False  # LLaVA ties only Llama-style embed_tokens: a tied head is copied
    config = LlavaConfig(vision_config=vision_config, text_config=text_config,
                         image_token_index=tokenizer.convert_tokens_to_ids(image_token), image_seq_length=count,
                         projector_hidden_act=projector_hidden_act, vision_feature_layer=vision_feature_layer,
                         vision_feature_select_strategy=strategy)
    model = assemble(config, tower.model, language_model, seed)
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        setattr(model.generation_config, name, getattr(tokenizer, name))
    processor = LlavaProcessor(image_processor=tower.image_processor, tokenizer=tokenizer,
                               patch_size=vision_config.patch_size, vision_feature_select_strategy=strategy,
                               chat_template=chat_template or default_chat_template(image_token),
                               image_token=image_token, num_additional_image_tokens=int(tower.family == "clip"))
    return model.to(torch_dtype).eval(), processor

