"""Tokenizers without downloads: the ShapesWorld BPE (trained, cached, lossless), open_clip's bundled BPE, MiniLM's."""

import pytest
import torch

from vlforge.common.errors import VLForgeError
from vlforge.common.presets.tokenizer import (
    SPECIAL_TOKENS,
    minilm_model_dir,
    minilm_tokenizer,
    open_clip_tokenizer,
    shapes_corpus,
    shapes_tokenizer,
    train_bpe_tokenizer,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cache = tmp_path_factory.mktemp("tok")
    return cache, shapes_tokenizer(vocab_size=600, num_images=100, seed=3, cache_dir=cache)


def test_special_tokens_and_ids(trained):
    _, tok = trained
    assert len(tok) == 600
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    ids = tok("a red circle <image> <|image_pad|>")["input_ids"]
    assert ids[0] == tok.bos_token_id
    assert tok.convert_tokens_to_ids("<image>") in ids and tok.convert_tokens_to_ids("<|image_pad|>") in ids


def test_shapes_words_are_single_tokens(trained):
    _, tok = trained
    for word in ("circle", "hexagon", "purple", "background", "left"):
        assert len(tok.tokenize(" " + word)) == 1, word


@pytest.mark.parametrize("text", ["A small crimson disc is left of the large hexagon.", "  two\nlines\t",
                                  "ünïcödé ✓ 4821 stock-photo", ""])
def test_decode_inverts_encode(trained, text):
    _, tok = trained
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_cached_on_disk_and_reloaded(trained):
    cache, tok = trained
    (folder,) = [p for p in cache.iterdir() if p.is_dir()]
    assert (folder / "tokenizer.json").is_file()
    again = shapes_tokenizer(vocab_size=600, num_images=100, seed=3, cache_dir=cache)
    assert again.get_vocab() == tok.get_vocab()
    assert len(list(cache.iterdir())) == 1  # loaded, not trained a second time


def test_training_is_deterministic_and_corpus_covers_generated_text():
    corpus = list(shapes_corpus(num_images=20, seed=0))
    assert len(corpus) > 20 * 5 and "crimson" in corpus[0]
    a = train_bpe_tokenizer(corpus, vocab_size=400).get_vocab()
    b = train_bpe_tokenizer(corpus, vocab_size=400).get_vocab()
    assert a == b


def test_too_small_vocab_is_an_error():
    with pytest.raises(VLForgeError, match="vocab_size 100 is too small"):
        train_bpe_tokenizer(["a b c"], vocab_size=100)


def test_open_clip_bundled_tokenizer():
    tokens = open_clip_tokenizer()(["a red circle"])
    assert tokens.shape == (1, 77) and tokens[0, 0] == 49406 and (tokens[0] == 49407).sum() == 1


def test_minilm_tokenizer_from_package_directory():
    assert (minilm_model_dir() / "tokenizer.json").is_file()
    tok = minilm_tokenizer()
    ids = tok("A red circle")["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["[CLS]", "a", "red", "circle", "[SEP]"]
    assert torch.tensor(ids).max() < tok.vocab_size
