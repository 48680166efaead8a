"""A text-only causal LM through vlforge.common.lm: the llama_tiny / gpt2_tiny presets and GPT-2 / Llama configs of
transformers saved to a folder load, freeze, take LoRA, generate ids with per-token log-probs, train SFT steps from
the vlforge-captioner console with the shipped text-only config, and the trained checkpoint reloads — into the
same LoRA model and, merged, as a transformers folder with from_pretrained semantics."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from vlforge.common.lm.generate import generate_sequences
from vlforge.common.lm.loading import load_generative, save_pretrained
from vlforge.common.lm.logprobs import IGNORE_INDEX, token_logprobs
from vlforge.common.lm.model import GenerativeModel
from vlforge.common.lm.policy import FreezePolicy, LoraSettings
from vlforge.common.presets import build_preset
from vlforge.common.shapes.build import build_shapes_store

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _config_folder(tmp_path: Path, arch: str) -> str:
    """A transformers GPT-2 / Llama config (random init) with the ShapesWorld tokenizer, saved to a folder."""
    tokenizer = build_preset("llama_tiny")[1]
    special = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
               "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    if arch == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=256, **special))
    else:
        model = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                             num_attention_heads=2, num_key_value_heads=2, **special))
    folder = tmp_path / arch
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("source", ["preset:llama_tiny", "preset:gpt2_tiny", "folder:gpt2", "folder:llama"])
def test_text_lm_loads_freezes_takes_lora_and_generates_ids_with_logprobs(source, tmp_path):
    if source.startswith("folder:"):
        source = _config_folder(tmp_path, source.split(":")[1])
    frozen = GenerativeModel(source, freeze=FreezePolicy(llm=False))
    assert frozen.family.name == "causal_lm" and not any(p.requires_grad for p in frozen.model.parameters())
    built = GenerativeModel(source, lora=LoraSettings(r=2))
    trainable = [n for n, p in built.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    rows = generate_sequences(built, None, ["a red circle", "two blue squares left of a star"],
                              decoding={"max_new_tokens": 6, "do_sample": True, "temperature": 1.0}, batch_size=2)
    assert len(rows) == 2 and built.model.training  # generation restores training mode
    built.model.eval()  # GPT-2's dropout off, as during generation
    for row in rows:  # the log-probs are the model's own: a forward pass over prompt + response gives them back
        ids = torch.cat([row.prompt_ids, row.response_ids]).unsqueeze(0)
        labels = ids.clone()
        labels[0, :row.prompt_ids.numel()] = IGNORE_INDEX
        with torch.no_grad():
            logits = built.model(input_ids=ids).logits
        logps, mask = token_logprobs(logits, labels)
        assert row.response_ids.numel() >= 1 and row.logprobs.shape == row.response_ids.shape
        torch.testing.assert_close(logps[mask], row.logprobs, atol=1e-4, rtol=1e-4)


def test_console_sft_of_a_text_lm_and_its_checkpoint_reloads(tmp_path):
    store = tmp_path / "store"
    build_shapes_store(store, 8, seed=1, workers=1, split_fractions={"seed": 0.5, "val": 0.5})
    run = subprocess.run(
        [sys.executable, "-m", "vlforge.captioner.cli", "fit", "--config", "captioner:sft_text_tiny.yaml",
         "--data.init_args.store", str(store), "--data.init_args.batch_size", "2", "--trainer.max_steps", "3",
         "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false", "--run_root",
         str(tmp_path / "runs"), "--trainer.accelerator", "cpu", "--trainer.devices", "1"],
        capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    checkpoint = next((tmp_path / "runs").rglob("last.ckpt"))
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert state["global_step"] == 3
    trained = {k[len("model."):]: v for k, v in state["state_dict"].items() if k.startswith("model.")}
    start = GenerativeModel("preset:llama_tiny", lora=LoraSettings(r=8, alpha=16)).model.state_dict()
    assert any(not torch.equal(trained[k], start[k]) for k in trained if "lora_B" in k)  # the adapters trained

    reloaded = GenerativeModel("preset:llama_tiny", lora=LoraSettings(r=8, alpha=16), weights=str(checkpoint))
    for name, value in reloaded.model.state_dict().items():
        torch.testing.assert_close(value, trained[name])
    folder = save_pretrained(reloaded.model, reloaded.processor, tmp_path / "merged")
    model, tokenizer = load_generative(str(folder))  # transformers' from_pretrained, LoRA merged in
    assert type(model).__name__ == "LlamaForCausalLM" and tokenizer.chat_template == reloaded.processor.chat_template
    ids = tokenizer("USER: a red circle\nASSISTANT:", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, reloaded.model(input_ids=ids).logits,
                                   atol=1e-5, rtol=1e-5)


def test_a_missing_folder_is_a_one_line_error():
    from vlforge.common.errors import VLForgeError

    with pytest.raises(VLForgeError, match="cannot load '/nonexistent/model': no such directory"):
        load_generative("/nonexistent/model")
    with pytest.raises(VLForgeError, match="kind 'video' is not one of"):
        load_generative("preset:llama_tiny", kind="video")
