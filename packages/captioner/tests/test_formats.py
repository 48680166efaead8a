"""Caption formats: every shipped YAML loads; prompts fill their placeholders; bad templates are refused."""

import pytest

from vlforge.captioner.formats import CaptionFormat, format_names, load_format
from vlforge.common.errors import VLForgeError


def test_the_four_paper_formats_ship_and_load():
    assert format_names() == ["alt_fusion", "dense", "descriptive", "short"]
    kinds = {name: load_format(name).kind for name in format_names()}
    assert kinds == {"alt_fusion": "alt_fusion", "dense": "dense", "descriptive": "descriptive", "short": "short"}


def test_prompts_fill_budget_and_alt_text():
    assert "78 tokens" in load_format("descriptive").prompt()
    afc = load_format("alt_fusion")
    prompt = afc.prompt(alt_text="  red ball {stock photo}  ")
    assert '"red ball {stock photo}"' in prompt and "78" in prompt
    with pytest.raises(VLForgeError, match="needs the image's alt-text"):
        afc.prompt()
    with pytest.raises(VLForgeError, match="takes no alt-text"):
        load_format("short").prompt(alt_text="a ball")


def test_bad_templates_are_one_line_errors(tmp_path):
    with pytest.raises(VLForgeError, match="alt_text"):
        CaptionFormat("x", "short", "Describe {alt_text}.")
    with pytest.raises(VLForgeError, match="unknown placeholders"):
        CaptionFormat("x", "short", "Describe {colour}.")
    with pytest.raises(VLForgeError, match="kind 'tiny'"):
        CaptionFormat("x", "tiny", "Describe.")
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nkind: free\ninstruction: Say what you see.\ncolour: red\n")
    with pytest.raises(VLForgeError, match="unknown keys"):
        load_format(str(path))
    path.write_text("name: mine\nkind: free\ninstruction: Say what you see.\n")
    assert load_format(str(path)).prompt() == "Say what you see."
    with pytest.raises(VLForgeError, match="nowhere.yaml"):
        load_format("nowhere.yaml")
