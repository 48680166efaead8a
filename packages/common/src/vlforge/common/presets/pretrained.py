"""Load a real pretrained model by hub name or local directory — one code path (transformers' from_pretrained).

On a GPU cluster ``load_pretrained("llava-hf/llava-1.5-7b-hf", "image_text_to_text")`` loads the real model; here
``load_pretrained(minilm_model_dir(), "text_encoder")`` loads the installed MiniLM, and a tiny preset saved with
``model.save_pretrained(d); processor.save_pretrained(d)`` loads back with ``load_pretrained(d, kind)``.
Remote code stays off unless a config turns ``trust_remote_code`` on.
"""

from __future__ import annotations

import os
from typing import Any

from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
)

from vlforge.common.errors import VLForgeError

KINDS = {
    "text_encoder": (AutoModel, AutoTokenizer),
    "causal_lm": (AutoModelForCausalLM, AutoTokenizer),
    "image_text_to_text": (AutoModelForImageTextToText, AutoProcessor),
}


def load_pretrained(name_or_path: str | os.PathLike, kind: str, trust_remote_code: bool = False,
                    **model_kwargs: Any) -> tuple[Any, Any]:
    """``(model, tokenizer_or_processor)`` for a hub name or a local directory.

    ``kind``: "text_encoder" (AutoModel + AutoTokenizer), "causal_lm" (AutoModelForCausalLM + AutoTokenizer) or
    "image_text_to_text" (AutoModelForImageTextToText + AutoProcessor: LLaVA, Qwen2-VL, BLIP, ...).
    ``model_kwargs`` go to the model's from_pretrained (e.g. ``dtype``, ``attn_implementation``,
    ``local_files_only``). A processor whose class drops its chat template on load (BLIP) gets the tokenizer's.
    """
    if kind not in KINDS:
        raise VLForgeError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    model_class, preprocessor_class = KINDS[kind]
    source = os.fspath(name_or_path)
    if source.startswith(("/", "./", "../", "~")) and not os.path.isdir(os.path.expanduser(source)):
        raise VLForgeError(f"cannot load {source!r} as {kind}: no such directory")
    source = os.path.expanduser(source)
    try:
        model = model_class.from_pretrained(source, trust_remote_code=trust_remote_code, **model_kwargs)
        preprocessor = preprocessor_class.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise VLForgeError(f"cannot load {source!r} as {kind}: {first_line}") from None
    tokenizer = getattr(preprocessor, "tokenizer", None)
    if tokenizer is not None and getattr(preprocessor, "chat_template", None) is None:
        preprocessor.chat_template = getattr(tokenizer, "chat_template", None)
    return model, preprocessor
