import sys

import pytest

from vlforge.captioner import cli
from vlforge.captioner.captioner import Captioner
from vlforge.captioner.model_setup import FreezePolicy


@pytest.mark.parametrize("command", ["generate", "analyze"])
def test_console_script_dispatches_store_tools(command, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["vlforge-captioner", command, "--help"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 0
    assert f"vlforge-captioner {command}" in capsys.readouterr().out


def test_blip_captioner_places_its_decoder_in_the_llm_part():
    # FreezePolicy fields say which parts train: freeze the LLM (the BLIP text decoder), train the vision tower.
    captioner = Captioner(source="preset:blip_tiny", freeze=FreezePolicy(vision_tower=True, projector=True, llm=False))
    decoder = [p for n, p in captioner.model.named_parameters() if "text_decoder" in n]
    assert decoder and not any(p.requires_grad for p in decoder)
    assert any(p.requires_grad for n, p in captioner.model.named_parameters() if "vision_model" in n)
