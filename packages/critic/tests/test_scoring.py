"""The two scoring modes (#12 item 3): the fast verdict probability against a direct one-example computation, and
generated critiques whose verdicts are parsed (no verdict line: unscored)."""

import numpy as np
import pytest
import torch
from PIL import Image

from vlforge.common.errors import VLForgeError
from vlforge.common.lm.prompts import prompt_text, render, tokenizer_of
from vlforge.common.presets import build_preset
from vlforge.critic.prompts import verdict_prompt
from vlforge.critic.scoring import score_sentences, verdict_probabilities, verdict_token_ids

SENTENCES = ["There is a red circle.", "The large blue square is to the left of the small green star.", "x"]


@pytest.fixture(scope="module")
def llava():
    return build_preset("llava_tiny")


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in SENTENCES]


def _direct_p_consistent(model, processor, image, sentence):
    """p(consistent) from one unpadded sequence: prompt ids, then the answer's ids up to the verdict word; the
    softmax of the last position's logits over the two verdict tokens."""
    tokenizer = tokenizer_of(processor)
    prompt = prompt_text(processor, verdict_prompt(sentence, "short"), image=True)
    answer = {v: tokenizer(render(processor, "", f"Verdict: {v}", image=False).response,
                           add_special_tokens=False)["input_ids"] for v in ("consistent", "inconsistent")}
    k = next(i for i, (a, b) in enumerate(zip(answer["consistent"], answer["inconsistent"])) if a != b)
    inputs = processor(text=[prompt], images=[image], return_tensors="pt")
    ids = torch.cat([inputs["input_ids"][0], torch.tensor(answer["consistent"][:k])]).unsqueeze(0)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids),
                       pixel_values=inputs["pixel_values"]).logits[0, -1]
    z_c, z_i = logits[answer["consistent"][k]], logits[answer["inconsistent"][k]]
    return float(torch.exp(z_c) / (torch.exp(z_c) + torch.exp(z_i)))


def test_verdict_probability_matches_a_direct_computation_in_padded_batches(llava, images):
    model, processor = llava
    k, id_c, id_i = verdict_token_ids(processor)
    assert id_c != id_i and k >= 1
    model.train()
    batched = verdict_probabilities(model, processor, images, SENTENCES, instruction="short", batch_size=2)
    assert model.training  # the mode is restored
    model.eval()
    direct = [_direct_p_consistent(model, processor, im, s) for im, s in zip(images, SENTENCES)]
    assert batched == pytest.approx(direct, abs=1e-5)
    assert len(set(round(p, 6) for p in batched)) == len(SENTENCES)  # the sentence matters: not one constant


def test_verdict_probability_scores_say_consistent_at_one_half_and_above(llava, images):
    model, processor = llava
    scores = score_sentences(model, processor, images, SENTENCES, mode="probability", instruction="short")
    for score in scores:
        assert score.verdict is (score.p_consistent >= 0.5) and score.critique is None


def test_critique_mode_generates_and_an_untrained_critic_is_unscored_not_consistent(llava, images):
    model, processor = llava
    scores = score_sentences(model, processor, images, SENTENCES, mode="critique", instruction="short",
                             decoding={"max_new_tokens": 8, "do_sample": False})
    assert len(scores) == len(SENTENCES)
    for score in scores:  # a random-init model writes no verdict line
        assert isinstance(score.critique, str) and score.verdict is None and score.p_consistent is None


def test_unknown_mode_and_mismatched_inputs_are_one_line_errors(llava, images):
    model, processor = llava
    with pytest.raises(VLForgeError, match="scoring mode 'fast'"):
        score_sentences(model, processor, images, SENTENCES, mode="fast")
    with pytest.raises(VLForgeError, match="2 images but 3 sentences"):
        verdict_probabilities(model, processor, images[:2], SENTENCES)
