"""vlforge.common.lm: the generative-model toolkit every method builds on (SFT, preference, PPO; captioner, critic,
rewriter).

- ``loading``: ``load_generative`` (preset / hub / folder; processor or tokenizer), ``weights_from``,
  ``save_pretrained``;
- ``policy``: model families as data, ``FreezePolicy`` (last k vision layers too), ``LoraSettings``;
- ``model``: ``GenerativeModel`` (loaded + policy applied; YAML-friendly);
- ``prompts``: prompt styles ``chat`` / ``plain``; ``collate``: ``SFTCollator``;
- ``logprobs``: ``token_logprobs``, ``sequence_logprobs``, ``masked_mean``;
- ``generate``: ``generate_texts``, ``generate_sequences`` (ids + per-token log-probs);
- ``reference``: the frozen reference policy; ``running``: ``RunningMean``;
- ``generated_store``, ``shards``: generated texts into a CaptionStore, resumable, DDP shards merged;
- ``lit_sft``: ``SFTLitModule``.

Importing this package stays light (no Lightning, peft or bitsandbytes): import the modules you need.
"""
