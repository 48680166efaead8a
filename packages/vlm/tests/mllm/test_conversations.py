"""LLaVA conversation JSON: valid rows kept, each kind of bad row skipped and counted with its id; ShapesWorld QA
exported as LLaVA JSON reads back whole."""

from __future__ import annotations

import json

import pytest

from vlforge.common.errors import VLForgeError
from vlforge.common.shapes.build import generate_records
from vlforge.common.shapes.llava_qa import SHORT_ANSWER_PROMPT, shapes_qa_to_llava
from vlforge.vlm.mllm.conversations import read_llava_conversations


def _turns(*pairs):
    return [{"from": role, "value": value} for role, value in pairs]


GOOD = _turns(("human", "<image>\nWhat is it?"), ("gpt", "A red circle."), ("human", "Where?"), ("gpt", "Left."))
ROWS = [
    {"id": "ok", "image": "a.png", "conversations": GOOD},
    {"id": "text_only", "conversations": _turns(("human", "Hi"), ("gpt", "Hello"))},
    {"id": "suffix", "image": "a.png", "conversations": _turns(("human", "Describe.\n<image>"), ("gpt", "x"))},
    {"id": "no_file", "image": "b.png", "conversations": GOOD},
    {"id": "escapes", "image": "../a.png", "conversations": GOOD},
    {"id": "absolute", "image": "/etc/passwd", "conversations": GOOD},
    {"id": "no_token", "image": "a.png", "conversations": _turns(("human", "What is it?"), ("gpt", "x"))},
    {"id": "token_no_image", "conversations": GOOD},
    {"id": "two_tokens", "image": "a.png", "conversations": _turns(("human", "<image> <image>"), ("gpt", "x"))},
    {"id": "token_in_answer", "image": "a.png",
     "conversations": _turns(("human", "<image>"), ("gpt", "<image>"))},
    {"id": "empty", "image": "a.png", "conversations": []},
    {"id": "gpt_first", "image": "a.png", "conversations": _turns(("gpt", "<image>"), ("human", "x"))},
    {"id": "two_humans", "image": "a.png", "conversations": _turns(("human", "<image>"), ("human", "x"))},
    {"id": "unanswered", "image": "a.png",
     "conversations": _turns(("human", "<image>"), ("gpt", "x"), ("human", "y"))},
    {"id": "other_role", "image": "a.png", "conversations": _turns(("human", "<image>"), ("assistant", "x"))},
    {"id": "no_list", "image": "a.png", "conversations": "hello"},
    {"id": "non_text", "image": "a.png", "conversations": [{"from": "human", "value": 3}, {"from": "gpt"}]},
    "not a row",
]
EXPECTED = {"missing_image": ["no_file"], "image_outside_root": ["escapes", "absolute"],
            "no_image_token": ["no_token"], "image_token_without_image": ["token_no_image"],
            "extra_image_tokens": ["two_tokens", "token_in_answer"], "empty_conversation": ["empty"],
            "turn_order": ["gpt_first", "two_humans", "unanswered", "other_role"],
            "malformed_row": ["no_list", "non_text", "#17"]}


def test_bad_rows_are_skipped_and_counted_with_their_ids(tmp_path):
    (tmp_path / "a.png").write_bytes(b"png")
    (tmp_path / "rows.json").write_text(json.dumps(ROWS))
    kept, summary = read_llava_conversations(tmp_path / "rows.json")
    assert [c.id for c in kept] == ["ok", "text_only", "suffix"]
    assert kept[0].turns[1] == ("gpt", "A red circle.") and kept[0].image_path == str(tmp_path / "a.png")
    assert kept[1].image is None and kept[1].image_path is None
    assert dict(summary.skipped) == EXPECTED
    line = summary.to_text()
    assert "\n" not in line and line.startswith(f"llava json {tmp_path / 'rows.json'}: kept 3, skipped 15 (")
    assert "turn_order 4: gpt_first, two_humans, unanswered, other_role" in line


def test_images_under_another_root_and_unchecked(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "b.png").write_bytes(b"png")
    (tmp_path / "rows.json").write_text(json.dumps(ROWS[:4]))
    kept, _ = read_llava_conversations(tmp_path / "rows.json", images_root=tmp_path / "images")
    assert [c.id for c in kept] == ["text_only", "no_file"]
    kept, summary = read_llava_conversations(tmp_path / "rows.json", check_images=False)
    assert [c.id for c in kept] == ["ok", "text_only", "suffix", "no_file"] and summary.skipped_count == 0


def test_unreadable_files_are_one_line_errors(tmp_path):
    with pytest.raises(VLForgeError, match="cannot be read"):
        read_llava_conversations(tmp_path / "absent.json")
    (tmp_path / "d.json").write_text('{"id": 1}')
    with pytest.raises(VLForgeError, match="top level is a dict"):
        read_llava_conversations(tmp_path / "d.json")


def test_shapes_qa_exported_as_llava_json_reads_back_whole(tmp_path):
    records = list(generate_records(12, 0, workers=1))
    rows = shapes_qa_to_llava(records)
    assert len(rows) == 12
    for record in records:
        (tmp_path / f"{record.image_id}.png").write_bytes(record.image_bytes)
    (tmp_path / "qa.json").write_text(json.dumps(rows))
    kept, summary = read_llava_conversations(tmp_path / "qa.json")
    assert summary.skipped_count == 0 and len(kept) == 12
    for conversation, record in zip(kept, records, strict=True):
        qa = record.meta["qa"]
        assert conversation.id == record.image_id
        assert [text for role, text in conversation.turns if role == "gpt"] == [p["answer"] for p in qa]
        questions = [text for role, text in conversation.turns if role == "human"]
        assert questions[0] == f"<image>\n{qa[0]['question']}\n{SHORT_ANSWER_PROMPT}"
        assert questions[1:] == [f"{p['question']}\n{SHORT_ANSWER_PROMPT}" for p in qa[1:]]


def test_shapes_qa_by_type(tmp_path):
    records = list(generate_records(12, 0, workers=1))
    rows = shapes_qa_to_llava(records, types=["text"], answer_prompt=None, image_name=lambda r: f"i/{r.image_id}.png")
    with_sign = [r for r in records if any(q["type"] == "text" for q in r.meta["qa"])]
    assert [row["id"] for row in rows] == [r.image_id for r in with_sign] and 0 < len(rows) < 12
    assert rows[0]["image"].startswith("i/") and rows[0]["conversations"][0]["value"] == (
        "<image>\nWhat word is written on the sign?")
    with pytest.raises(VLForgeError, match="QA type 'shape'"):
        shapes_qa_to_llava(records, types=["shape"])
