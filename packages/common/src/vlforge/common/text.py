"""Text utilities used by every package: text shearing, sentence splitting and sampling, token counting.

Text shearing (Liu et al., "MLLMs-Augmented Visual-Language Representation Learning", section 3.4): a
synthetic caption is cut to the length of the raw captions, C'_i = G(x_I^i, Q, T) (their Eq. 3), keeping "the
first complete clause" so that hallucinations, which gather in the later part of long generated text, are
dropped. T is "the average length of the original captions" (``mean_caption_tokens``). ``shear`` applies the
cut to finished text: look only at the first T tokens, return the first sentence in them that ends in ".", "!"
or "?" and is longer than 5 characters, else the T tokens themselves. Sentences come from a splitter
(``vlforge.common.sentences``): the regex, exact for ShapesWorld, or pysbd for real captions.

Tokens are whitespace-separated words unless a tokenizer is given. A tokenizer may be a transformers
tokenizer, a ``tokenizers.Tokenizer`` or anything with ``encode(text) -> ids`` and ``decode(ids) -> text``
(open_clip's BPE). Special tokens and padding are never counted and truncation never applies. Every function
returns text with runs of whitespace collapsed to one space and no leading or trailing whitespace.
"""

from __future__ import annotations

import random
import re
from typing import Any

from vlforge.common.errors import VLForgeError
from vlforge.common.sentences import SENTENCE_END, ends_sentence, sentence_spans

MIN_SHEARED_CHARS = 5


def _squash(text: str) -> str:
    return " ".join(text.split())


def _encode(tokenizer: Any, text: str) -> tuple[list[int], list[tuple[int, int]] | None]:
    """Token ids of ``text`` without special tokens, and character offsets when the tokenizer gives them."""
    if hasattr(tokenizer, "is_fast"):  # a transformers tokenizer
        if tokenizer.is_fast:
            enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
        return list(tokenizer.encode(text, add_special_tokens=False)), None
    if hasattr(tokenizer, "token_to_id"):  # a tokenizers.Tokenizer
        encoded = _encode_unpadded(tokenizer, text)
        return list(encoded.ids), [tuple(o) for o in encoded.offsets]
    return list(tokenizer.encode(text)), None


def _encode_unpadded(tokenizer: Any, text: str) -> Any:
    """``tokenizers.Tokenizer.encode`` with its configured padding and truncation switched off for the call
    (and restored after), so that every token of the text is seen and no padding is counted."""
    padding, truncation = tokenizer.padding, tokenizer.truncation
    tokenizer.no_padding()
    tokenizer.no_truncation()
    try:
        return tokenizer.encode(text, add_special_tokens=False)
    finally:
        if padding is not None:
            tokenizer.enable_padding(**padding)
        if truncation is not None:
            tokenizer.enable_truncation(**truncation)


def _decode(tokenizer: Any, ids: list[int]) -> str:
    if hasattr(tokenizer, "is_fast") or hasattr(tokenizer, "token_to_id"):
        return tokenizer.decode(ids, skip_special_tokens=True)
    return tokenizer.decode(ids)


def token_prefix(text: str, max_tokens: int, tokenizer: Any = None) -> str:
    """The text of the first ``max_tokens`` tokens of ``text`` (whitespace not squashed).

    Whitespace tokens: the original text up to the end of the max_tokens-th word. A tokenizer with character
    offsets (transformers fast tokenizers, ``tokenizers.Tokenizer``): the original text up to where the
    max_tokens-th token ends, so case and spacing survive. Other tokenizers: ``decode`` of the first
    max_tokens ids, i.e. the text as the tokenizer normalises it (open_clip's BPE lower-cases and spaces out
    punctuation).
    """
    if max_tokens < 0:
        raise VLForgeError(f"max_tokens must be >= 0, got {max_tokens}")
    if max_tokens == 0:
        return ""
    if tokenizer is None:
        words = list(re.finditer(r"\S+", text))
        return text if len(words) <= max_tokens else text[:words[max_tokens - 1].end()]
    ids, offsets = _encode(tokenizer, text)
    if len(ids) <= max_tokens:
        return text
    if offsets is not None:
        return text[:offsets[max_tokens - 1][1]]
    return _decode(tokenizer, ids[:max_tokens])


def split_sentences(text: str, splitter: str = "regex") -> list[str]:
    """Sentences of ``text`` in order (see ``vlforge.common.sentences``: "regex" ends a sentence at ".", "!" or
    "?", "pysbd" segments real text); a trailing fragment without an end mark is a sentence too. Empty or
    whitespace-only text has none."""
    return [_squash(text[start:end]) for start, end in sentence_spans(text, splitter)]


def shear(text: str, max_tokens: int, tokenizer: Any = None, splitter: str = "regex") -> str:
    """Text shearing: the first sentence ending (".", "!" or "?") within the first ``max_tokens`` tokens whose
    stripped length is over 5 characters; when none ends within the budget, the first ``max_tokens`` tokens
    themselves. Shorter sentences ("Ok.") are skipped. The result is stripped, internal whitespace squashed;
    budget 0 gives "". See ``token_prefix`` for what "the first max_tokens tokens" means with a tokenizer.

    ``splitter`` "regex" finds sentence ends in the token prefix; "pysbd" segments the whole text and keeps the
    sentences that end inside the prefix (so "Mr." or "St." cut by the budget never count as an end)."""
    prefix = token_prefix(text, max_tokens, tokenizer)
    if splitter == "regex":
        start = 0
        for match in SENTENCE_END.finditer(prefix):
            sentence = _squash(prefix[start:match.end()])
            if len(sentence) > MIN_SHEARED_CHARS:
                return sentence
            start = match.end()
        return _squash(prefix)
    whole = text.startswith(prefix)
    spans = sentence_spans(text if whole else prefix, splitter)
    if not whole:
        spans = spans[:-1]  # a normalised prefix (decode path): its last span may be cut
    for start, end in spans:
        if end > len(prefix):
            break
        sentence = _squash(text[start:end] if whole else prefix[start:end])
        if ends_sentence(sentence) and len(sentence) > MIN_SHEARED_CHARS:
            return sentence
    return _squash(prefix)


def sample_sentences(text: str, k: int, rng: random.Random, keep_order: bool = True, splitter: str = "regex") -> str:
    """Random sentence sampling (semantic-guidance paper, section 3.5: "between one and ten sentences" of a
    long caption become the training target): draw n uniformly from 1..min(k, #sentences), then n distinct
    sentences uniformly; joined with spaces, in their original order unless ``keep_order`` is False. Text
    without sentences gives "". ``splitter``: see ``split_sentences``."""
    if k < 1:
        raise VLForgeError(f"k must be >= 1, got {k}")
    sentences = split_sentences(text, splitter)
    if not sentences:
        return ""
    n = rng.randint(1, min(k, len(sentences)))
    chosen = rng.sample(range(len(sentences)), n)
    if keep_order:
        chosen.sort()
    return " ".join(sentences[i] for i in chosen)


def count_tokens(text: str, tokenizer: Any = None) -> int:
    """Whitespace words, or the tokenizer's tokens without special tokens."""
    if tokenizer is None:
        return len(text.split())
    return len(_encode(tokenizer, text)[0])


def mean_caption_tokens(store: Any, source: str, kind: str | None = None, split: str | None = None,
                        tokenizer: Any = None) -> float:
    """Mean token count of the captions of ``source`` (and ``kind``) in a store (a CaptionStore or its path),
    optionally one split: the default shear budget T = round(mean) of the raw (e.g. "alt_text") captions."""
    from vlforge.common.store import CaptionStore

    store = store if isinstance(store, CaptionStore) else CaptionStore(store)
    total = count = 0
    for record in store.iter_records(split=split, source=source):
        for caption in record.captions_by(source=source, kind=kind):
            total += count_tokens(caption.text, tokenizer)
            count += 1
    if count == 0:
        raise VLForgeError(f"store {store.path!r} has no captions of source {source!r}"
                           + (f", kind {kind!r}" if kind else "") + (f" in split {split!r}" if split else ""))
    return total / count
