"""Export of a Lightning checkpoint to safetensors + config.json and reload without Lightning."""

import json
import pickle
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vlforge.common.checkpoint import (
    check_ckpt_path,
    export_checkpoint,
    instantiate,
    load_exported,
    read_checkpoint_state_dict,
)
from vlforge.common.cli import run_cli
from vlforge.common.errors import VLForgeError

TOY_BASE = Path(__file__).parent / "toy" / "toy_base.yaml"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    assert (
        run_cli(
            "common", ["fit", "--config", str(TOY_BASE), "--run_root", str(root), "--trainer.max_steps", "3"]
        )
        == 0
    )
    return root / "common" / "version_0"


def test_export_network_and_reload_without_lightning(trained_run: Path, tmp_path: Path) -> None:
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    out = export_checkpoint(ckpt, tmp_path / "export", submodule="net")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    net = load_exported(out)
    assert type(net).__name__ == "ToyNet" and net.layers[0].out_features == 16
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, state["net." + key], rtol=0, atol=0)
    x = torch.randn(4, 8)
    reference = torch.nn.functional.linear(
        torch.tanh(torch.nn.functional.linear(x, state["net.layers.0.weight"], state["net.layers.0.bias"])),
        state["net.layers.3.weight"],
        state["net.layers.3.bias"],
    ).squeeze(-1)
    torch.testing.assert_close(net.eval()(x), reference)


def test_export_whole_litmodule(trained_run: Path, tmp_path: Path) -> None:
    module = load_exported(export_checkpoint(trained_run / "checkpoints" / "last.ckpt", tmp_path / "whole"))
    assert type(module).__name__ == "ToyLitModule" and module.lr == 0.05


def test_tied_weights_are_exported(tmp_path: Path) -> None:
    shared = torch.randn(3, 3)
    ckpt = tmp_path / "tied.ckpt"
    torch.save({"state_dict": {"a.weight": shared, "b.weight": shared}}, ckpt)
    (tmp_path / "config.yaml").write_text("model:\n  class_path: torch.nn.Identity\n")
    out = export_checkpoint(ckpt, tmp_path / "tied", run_config=tmp_path / "config.yaml")
    from safetensors.torch import load_file

    loaded = load_file(str(out / "model.safetensors"))
    torch.testing.assert_close(loaded["a.weight"], loaded["b.weight"])


def test_unsafe_checkpoint_is_refused(tmp_path: Path) -> None:
    ckpt = tmp_path / "evil.ckpt"
    with ckpt.open("wb") as handle:
        pickle.dump({"state_dict": {}, "payload": Path("x")}, handle)
    with pytest.raises(VLForgeError, match=r"evil.ckpt: cannot be loaded with weights_only=True"):
        read_checkpoint_state_dict(ckpt)


def test_zero_shard_folder_with_unsafe_shard_is_refused(tmp_path: Path) -> None:
    """The DeepSpeed path checks every shard with weights_only=True before deepspeed's zero_to_fp32 reads it."""
    shard_dir = tmp_path / "last.ckpt" / "checkpoint"
    shard_dir.mkdir(parents=True)
    torch.save({"module": {"w": torch.ones(1)}, "extra": Path("x")}, shard_dir / "mp_rank_00_model_states.pt")
    (shard_dir.parent / "latest").write_text("checkpoint")
    with pytest.raises(VLForgeError, match="mp_rank_00_model_states.pt: cannot be loaded"):
        read_checkpoint_state_dict(tmp_path / "last.ckpt")


def test_missing_checkpoint_and_missing_run_config(tmp_path: Path) -> None:
    with pytest.raises(VLForgeError, match="no such file or folder"):
        read_checkpoint_state_dict(tmp_path / "nope.ckpt")
    lone = tmp_path / "lone" / "x.ckpt"
    lone.parent.mkdir()
    torch.save({"state_dict": {"w": torch.ones(1)}}, lone)
    with pytest.raises(VLForgeError, match="no config.yaml"):
        export_checkpoint(lone, tmp_path / "out")


@pytest.mark.ddp
def test_real_zero2_and_zero3_checkpoints_export_exactly(tmp_path: Path, toy_env: dict[str, str]) -> None:
    """Real DeepSpeed ZeRO-2 / ZeRO-3 shards (DeepSpeed engine on CPU with gloo, Lightning's folder layout) merge
    through deepspeed's zero_to_fp32 into the engine's fp32 weights."""
    import socket
    import subprocess
    import sys

    from safetensors.torch import load_file

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    script = Path(__file__).parent / "toy" / "make_zero_checkpoint.py"
    made = subprocess.run(
        [sys.executable, str(script), str(tmp_path), port, "2", "3"],
        env=toy_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    for stage in (2, 3):
        run = tmp_path / f"zero{stage}"
        net = load_exported(export_checkpoint(run / "last.ckpt", run / "export", run_config=run / "config.yaml",
                                               submodule="net"))
        reference = load_file(str(run / "reference.safetensors"))
        assert reference.keys() == net.state_dict().keys()
        for key, value in reference.items():
            torch.testing.assert_close(net.state_dict()[key], value, rtol=0, atol=0, msg=f"zero{stage} {key}")


# ---------------------------------------------------------------- issue 16, item 6: no code from artefacts
class _Payload:
    """Unpickling this creates ``path``: proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize("class_path", ["subprocess.run", "vlforge.common.checkpoint.allow_classes",
                                        "vlforge.common.checkpoint.Path", "os.system", "builtins.open"])
def test_export_config_naming_a_callable_outside_the_allow_list_is_refused(tmp_path: Path, class_path: str) -> None:
    marker = tmp_path / "ran"
    folder = tmp_path / "export"
    folder.mkdir()
    save_file({"w": torch.ones(1)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"class_path": class_path, "init_args": {
        "args": ["touch", str(marker)], "name": "os", "file": str(marker), "mode": "w", "command": f"touch {marker}"}}))
    with pytest.raises(VLForgeError, match="is not allowed"):
        load_exported(folder)
    assert not marker.exists()


def test_nested_class_path_in_init_args_is_checked_too(tmp_path: Path) -> None:
    config = {"class_path": "torch.nn.Sequential", "init_args": {"extra": {"class_path": "subprocess.Popen",
                                                                             "init_args": {"args": ["true"]}}}}
    with pytest.raises(VLForgeError, match="subprocess.Popen.*not allowed"):
        instantiate(config)


def test_zero_folder_whose_latest_points_outside_is_refused_before_anything_is_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    outside = tmp_path / "outside"
    outside.mkdir()
    torch.save({"payload": _Payload(marker)}, outside / "bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt")
    torch.save({"payload": _Payload(marker)}, outside / "mp_rank_00_model_states.pt")
    folder = tmp_path / "run" / "last.ckpt"
    (folder / "checkpoint").mkdir(parents=True)
    torch.save({"module": {"w": torch.ones(1)}}, folder / "checkpoint" / "mp_rank_00_model_states.pt")
    (folder / "latest").write_text("../../outside")
    with pytest.raises(VLForgeError, match="not a sub-folder of the checkpoint"):
        read_checkpoint_state_dict(folder)
    assert not marker.exists()
    (folder / "latest").write_text("checkpoint")
    (folder / "checkpoint" / "bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt").symlink_to(
        outside / "bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt")
    with pytest.raises(VLForgeError, match="outside the folder"):
        read_checkpoint_state_dict(folder)
    assert not marker.exists()


def _zero_folder(root: Path, latest: str = "checkpoint") -> Path:
    """A ZeRO checkpoint folder in Lightning's layout holding one safe model shard."""
    folder = root / "last.ckpt"
    (folder / "checkpoint").mkdir(parents=True)
    torch.save({"module": {"w": torch.ones(1)}}, folder / "checkpoint" / "mp_rank_00_model_states.pt")
    (folder / "latest").write_text(latest)
    return folder


def _bad_ckpt_path(tmp_path: Path, kind: str) -> tuple[Path, str]:
    tmp_path.mkdir()
    if kind == "not an archive":
        (tmp_path / "notes.ckpt").write_text("not a checkpoint")
        return tmp_path / "notes.ckpt", "is not a checkpoint (not a torch.save archive)"
    if kind == "latest outside":
        return _zero_folder(tmp_path, latest="../../etc"), "not a sub-folder of the checkpoint"
    if kind == "no latest":
        folder = _zero_folder(tmp_path)
        (folder / "latest").unlink()
        return folder, "needs a 'latest' file naming its tag"
    return tmp_path / "missing.ckpt", "no such file or folder"


@pytest.mark.parametrize("kind", ["not an archive", "latest outside", "no latest", "missing"])
def test_a_bad_ckpt_path_is_a_one_line_error_before_anything_starts(tmp_path: Path, kind: str,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path, message = _bad_ckpt_path(tmp_path / "ckpt", kind)
    with pytest.raises(VLForgeError, match=re.escape(message)):
        check_ckpt_path(str(path))
    code = run_cli("common", ["fit", "--config", str(TOY_BASE), "--run_root", str(tmp_path / "runs"),
                              "--trainer.max_steps", "1", "--ckpt_path", str(path)])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err
    assert last.startswith("vlforge-common: error: ") and str(path) in last and message in last
    assert not (tmp_path / "runs" / "common").exists()  # nothing started


def test_ckpt_path_zero_folder_shards_are_proven_safe_before_deepspeed_unpickles_them(tmp_path: Path) -> None:
    """A ZeRO folder passes ``check_ckpt_path`` only when every shard loads with weights_only=True: an optimizer
    shard whose pickle would run code is refused, and the code never runs."""
    folder = _zero_folder(tmp_path)
    check_ckpt_path(str(folder))  # a folder of safe shards passes
    marker = tmp_path / "ran"
    torch.save({"payload": _Payload(marker)}, folder / "checkpoint" / "zero_pp_rank_0_mp_rank_00_optim_states.pt")
    with pytest.raises(VLForgeError, match="optim_states.pt: cannot be loaded with weights_only=True"):
        check_ckpt_path(str(folder))
    assert not marker.exists()


def test_export_never_overwrites_its_own_checkpoint(trained_run: Path) -> None:
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    before = ckpt.read_bytes()
    link = trained_run / "checkpoints" / "model.safetensors"
    link.symlink_to(ckpt)
    try:
        with pytest.raises(VLForgeError, match="would overwrite the input"):
            export_checkpoint(ckpt, trained_run / "checkpoints", submodule="net")
    finally:
        link.unlink()
    assert ckpt.read_bytes() == before
