"""Chat templates (Jinja) for the tiny multimodal presets.

Messages are ``{"role": ..., "content": str | [{"type": "image"} | {"type": "text", "text": ...}]}``. A user turn
renders as ``USER: <image placeholder> <text>\\n``, an assistant turn as ``ASSISTANT: <text></s>\\n``; the
assistant text (with its EOS) sits in a ``{% generation %}`` block, so ``return_assistant_tokens_mask=True`` marks
the tokens a captioner is trained on. ``add_generation_prompt`` ends the prompt with ``ASSISTANT:`` and the model
continues with `` <text></s>`` exactly as in training.
"""

from __future__ import annotations

_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['content'] is string -%}{%- set parts = [{'type': 'text', 'text': message['content']}] -%}"
    "{%- else -%}{%- set parts = message['content'] -%}{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- 'ASSISTANT:' -}}{%- generation -%}"
    "{%- for part in parts -%}{%- if part['type'] == 'text' -%}{{- ' ' + part['text'] -}}{%- endif -%}{%- endfor -%}"
    "{{- eos_token -}}{%- endgeneration -%}{{- '\\n' -}}"
    "{%- else -%}"
    "{{- message['role'] | upper + ':' -}}"
    "{%- for part in parts -%}"
    "{%- if part['type'] == 'image' -%}{{- ' @IMAGE@' -}}"
    "{%- elif part['type'] == 'text' -%}{{- ' ' + part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{{- '\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}"
)


def chat_template(image_placeholder: str) -> str:
    """The USER/ASSISTANT template with ``image_placeholder`` where an image part appears (e.g. ``<image>`` for
    LLaVA, ``<|vision_start|><|image_pad|><|vision_end|>`` for Qwen2-VL); the processor expands it per image."""
    return _TEMPLATE.replace("@IMAGE@", image_placeholder)
