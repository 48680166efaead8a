"""`vlforge-critic teacher-data` (#12 item 2, real data): the paper's Fig. 13 / 14 teacher prompts, the pairs file
read with bad rows skipped and counted by id, a teacher critique turned into a critic row only when it has a verdict
line, and the whole tool run with a real (tiny, untrained) image-text teacher."""

import json

import pytest
from PIL import Image

from vlforge.common.console import console
from vlforge.common.errors import VLForgeError
from vlforge.critic.cli import TOOLS
from vlforge.critic.llava_format import read_llava_critic
from vlforge.critic.prompts import critic_prompt
from vlforge.critic.teacher_data import (
    CorrectionPair,
    critic_row,
    main,
    rationale_prompt,
    read_pairs,
    teacher_critique_prompt,
)


@pytest.fixture
def pairs(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name, colour in (("a.png", "red"), ("b.png", "blue")):
        Image.new("RGB", (32, 32), colour).save(folder / name)
    (folder / "broken.png").write_bytes(b"not an image")
    rows = [{"id": "p1", "image": "a.png", "corrected": "A red square.", "original": "A blue square. It is big."},
            {"id": "p2", "image": "b.png", "corrected": "A blue disc.", "original": "A green disc."},
            {"id": "evil", "image": "../../etc/passwd", "corrected": "x", "original": "y"},
            {"id": "empty", "image": "a.png", "corrected": "", "original": "y"},
            {"id": "unreadable", "image": "broken.png", "corrected": "A thing.", "original": "A thing."}]
    path = folder / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    return path


def test_teacher_prompts_are_figures_13_and_14_with_their_fields():
    fig13 = rationale_prompt("A red square.", "A blue square.")
    assert fig13.startswith("You are an excellent visual language assistant. You will receive an image and two text "
                            "descriptions.")
    assert fig13.endswith("Human-corrected Image Description: A red square.\n\nOriginal Image Description: A blue "
                          "square.")
    fig14 = teacher_critique_prompt("the colour is wrong", "There is a blue square.")
    assert "4. Proper language: Use clear, formal language to describe the issues found" in fig14
    assert fig14.endswith("Common errors in the sentence may include: the colour is wrong\n\nSentence to be checked: "
                          "There is a blue square.")
    assert 'End with one line: "Verdict: consistent" or "Verdict: inconsistent".' in fig14


def test_pairs_are_read_with_bad_rows_skipped_and_named(pairs):
    usable, skipped = read_pairs(pairs, None)
    assert [p.pair_id for p in usable] == ["p1", "p2", "unreadable"]  # the image is read later
    assert usable[0].path == (pairs.parent / "a.png").resolve()
    reasons = {s["id"]: s["reason"] for s in skipped}
    assert set(reasons) == {"evil", "empty", "line 6"}
    assert "escapes the image folder" in reasons["evil"] and "non-empty texts" in reasons["empty"]
    assert reasons["line 6"] == "not JSON"
    assert [p.pair_id for p in read_pairs(pairs, None, limit=1)[0]] == ["p1"]
    with pytest.raises(VLForgeError, match="cannot read the pairs file"):
        read_pairs(pairs.parent / "nope.jsonl", None)


def test_a_critique_becomes_a_critic_row_only_with_a_verdict_line():
    pair = CorrectionPair("p1", "a.png", None, "A red square.", "A blue square.")
    critique = "Key points: colour.\nThe square is red, not blue.\n**Verdict: inconsistent**"
    row = critic_row(pair, 0, "There is a blue square.", critique)
    assert row["id"] == "p1-0" and row["image"] == "a.png"
    assert row["conversations"] == [{"from": "human", "value": "<image>\n" + critic_prompt("There is a blue square.")},
                                    {"from": "gpt", "value": critique}]
    assert critic_row(pair, 1, "There is a square.", "The eyes say yes, consistent with the image.") is None


def test_teacher_data_runs_with_a_tiny_image_text_teacher(pairs, tmp_path, capsys):
    out = tmp_path / "critic_real"
    code = console("critic", TOOLS, argv=["teacher-data", "--pairs", str(pairs), "--teacher", "preset:llava_tiny",
                                          "--output_dir", str(out), "--batch_size", "2", "--rationale_tokens", "6",
                                          "--critique_tokens", "6"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    counts = summary["counts"]
    assert counts["pairs"] == 2 and counts["sentences"] == 3  # "A blue square. It is big." + "A green disc."
    assert counts["consistent"] + counts["inconsistent"] + counts["no_verdict"] == 3
    assert {s["id"] for s in summary["skipped"]} == {"evil", "empty", "line 6", "unreadable"}
    rationales = [json.loads(line) for line in (out / "rationales.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rationales] == ["p1", "p2"]
    rows = json.loads((out / "critic.json").read_text())
    assert len(rows) == summary["rows"] == counts["consistent"] + counts["inconsistent"]
    assert len(read_llava_critic(out / "critic.json", pairs.parent)) == len(rows)
    assert f"{counts['no_verdict']} without a verdict, skipped 4" in capsys.readouterr().out
    assert main(["--pairs", str(pairs), "--teacher", "preset:llama_tiny", "--output_dir", str(out)]) == 2
    assert "a text-only model; the teacher has to see the image" in capsys.readouterr().err
