"""export_hf_llava of a LoRA-wrapped tiny LLaVA: the adapters are merged into the written copy (transformers loads
the folder and gives the adapted model's logits), the module's own model stays wrapped, and a non-LLaVA is refused."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForImageTextToText

from vlforge.common.errors import VLForgeError
from vlforge.common.lm.policy import LoraSettings, apply_lora
from vlforge.vlm.mllm import build_llava
from vlforge.vlm.mllm.export import export_hf_llava


def test_lora_llava_exports_merged_and_the_module_keeps_its_adapters(towers, image_inputs, tmp_path):
    torch.manual_seed(0)
    model, processor = build_llava(towers["clip"], "preset:llama_tiny")
    wrapped = apply_lora(model, LoraSettings(r=4, alpha=8)).eval()
    with torch.no_grad():  # lora_B starts at zero: make the adapters change the model
        for name, param in wrapped.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)
    inputs = image_inputs(processor)
    with torch.no_grad():
        adapted = wrapped(**inputs).logits
        with wrapped.disable_adapter():
            base = wrapped(**inputs).logits
    assert not torch.allclose(adapted, base, atol=1e-3)
    folder = export_hf_llava(SimpleNamespace(model=wrapped, processor=processor), tmp_path / "hf")
    loaded = AutoModelForImageTextToText.from_pretrained(folder).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, adapted, rtol=1e-4, atol=1e-4)
    assert isinstance(wrapped, PeftModel) and any("lora_B" in n for n, _ in wrapped.named_parameters())
    with pytest.raises(VLForgeError, match="holds a Linear; --format hf-llava exports a LlavaForConditionalGeneration"):
        export_hf_llava(SimpleNamespace(model=torch.nn.Linear(2, 2), processor=processor), tmp_path / "no")
