"""`vlforge-vlm export`: a trained CLIP checkpoint into another library's format.

    vlforge-vlm export --checkpoint runs/vlm/version_0/checkpoints/last.ckpt --format hf-vision --out clip_vision \
        [--llava-preset llava_small]

``open_clip``: the whole CLIP in open_clip's hub layout (``open_clip.create_model("local-dir:<out>")``);
``hf-vision``: the image tower as a Hugging Face ``CLIPVisionModelWithProjection`` folder (a LLaVA vision tower,
``model.vision_from`` of the captioner's llava presets); ``hf-clip``: the whole CLIP as a Hugging Face ``CLIPModel``
folder with tokenizer and processor (transformers' zero-shot-image-classification pipeline loads it); ``hf-llava``:
an MLLM checkpoint as a Hugging Face LLaVA folder (vlforge.vlm.mllm.export). ``--llava-preset NAME`` (hf-vision
only) also writes ``<out>/preset.yaml``: that llava preset with its vision tower from the export, which a captioner
names as ``source: preset:<out>/preset.yaml`` (how LLaVA starts from a CLIP ViT).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vlforge.common.console import ToolParser
from vlforge.common.errors import VLForgeError
from vlforge.common.presets.registry import write_vision_from_preset
from vlforge.vlm.hf_clip_export import export_hf_clip_checkpoint
from vlforge.vlm.hf_vision_export import export_hf_vision_checkpoint
from vlforge.vlm.mllm.export import export_hf_llava_checkpoint
from vlforge.vlm.open_clip_export import export_open_clip_checkpoint

EXPORTERS = {"open_clip": export_open_clip_checkpoint, "hf-vision": export_hf_vision_checkpoint,
             "hf-clip": export_hf_clip_checkpoint}
EXPORTERS["hf-llava"] = export_hf_llava_checkpoint  # an MLLM checkpoint as a Hugging Face LLaVA folder


def build_parser() -> ToolParser:
    parser = ToolParser(prog="vlforge-vlm export",
                        description="Export a trained checkpoint into another library's format.")
    parser.add_argument("--checkpoint", required=True,
                        help="a ContrastiveLitModule .ckpt (an MLLM LitModule .ckpt for hf-llava)")
    parser.add_argument("--format", required=True, choices=sorted(EXPORTERS))
    parser.add_argument("--out", required=True, help="the folder to write")
    parser.add_argument("--run_config", default=None,
                        help="the run's config.yaml when the checkpoint is not in <run>/checkpoints/")
    parser.add_argument("--llava-preset", default=None,
                        help="hf-vision: also write <out>/preset.yaml, this llava preset (name or YAML) with its "
                             "vision tower from the export")
    return parser


def main(argv: Sequence[str]) -> int:
    """``vlforge-vlm export ...`` (a tool of vlforge.vlm.cli; the console reports mistakes in one line)."""
    args = build_parser().parse_args(argv)
    if args.llava_preset is not None and args.format != "hf-vision":
        raise VLForgeError(f"--llava-preset starts a llava preset from an hf-vision export, not from {args.format}")
    out = EXPORTERS[args.format](args.checkpoint, args.out, args.run_config)
    print(out)
    if args.llava_preset is not None:
        description = f"{args.llava_preset} with the vision tower of the CLIP {args.checkpoint}"
        print(write_vision_from_preset(args.llava_preset, out, Path(out) / "preset.yaml", description))
    return 0
