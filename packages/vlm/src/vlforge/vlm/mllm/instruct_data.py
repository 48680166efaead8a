"""Instruction data for the LLaVA instruction stage: LLaVA conversation JSON (``llava_instruct_150k.json``,
LLaVA-mix-665K, ShapesWorld QA from ``vlforge-store export --format llava --qa``), read with validation by
:func:`vlforge.vlm.mllm.conversations.read_llava_conversations` (bad rows skipped and counted with their ids, the
summary logged), as plain multi-turn examples ``{key, image?, turns: [[instruction, response], ...]}``: the loss
falls on every assistant turn. Rows without an image are text-only conversations and train as such.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset

from vlforge.common.errors import VLForgeError
from vlforge.common.store.images import decode_image, read_image_file
from vlforge.vlm.mllm.caption_data import example_loader
from vlforge.vlm.mllm.conversations import IMAGE_TOKEN, Conversation, ConversationSummary, read_llava_conversations

log = logging.getLogger(__name__)


def conversation_example(conversation: Conversation) -> dict[str, Any]:
    """The example of one conversation (its image not yet loaded): ``<image>`` leaves the human text, the image
    goes into the first user turn."""
    turns = conversation.turns
    pairs = [[human.replace(IMAGE_TOKEN, "").strip(), gpt] for (_, human), (_, gpt) in zip(turns[::2], turns[1::2],
                                                                                          strict=True)]
    return {"key": conversation.id, "turns": pairs}


class LlavaConversations(Dataset):
    """The valid rows of a LLaVA JSON file (the first ``limit``), images loaded on access."""

    def __init__(self, path: str, images_root: str | None = None, limit: int | None = None) -> None:
        conversations, self.summary = read_llava_conversations(path, images_root)
        log.info("%s", self.summary.to_text())
        self.conversations = conversations[:limit]
        if not self.conversations:
            raise VLForgeError(f"llava json {path}: no valid row to train on ({self.summary.to_text()})")

    def __len__(self) -> int:
        return len(self.conversations)

    def __getitem__(self, index: int) -> dict[str, Any]:
        conversation = self.conversations[index]
        example = conversation_example(conversation)
        if conversation.image_path is not None:
            what = f"row {conversation.id}"
            try:
                example["image"] = decode_image(read_image_file(conversation.image_path, what), what)
            except VLForgeError as err:
                return {"key": conversation.id, "skip": str(err)}
        return example


class LlavaInstructDataModule(L.LightningDataModule):
    """Conversations of LLaVA JSON ``json`` for training (``val_json`` for the validation loss); ``images_root``:
    the folder image paths are relative to (default: each JSON file's folder)."""

    def __init__(self, json: str, val_json: str | None = None, images_root: str | None = None,
                 batch_size: int = 16, num_workers: int = 0, train_limit: int | None = None,
                 val_limit: int | None = 64, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        self.train_set = LlavaConversations(h.json, h.images_root, h.train_limit)
        self.val_set = LlavaConversations(h.val_json, h.images_root, h.val_limit) if h.val_json else None

    @property
    def summary(self) -> ConversationSummary:
        return self.train_set.summary

    def train_dataloader(self) -> DataLoader:
        return example_loader(self.train_set, self.hparams.batch_size, True, self.hparams.num_workers,
                              self.hparams.seed)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return example_loader(self.val_set, self.hparams.batch_size, False, self.hparams.num_workers)
