"""`vlforge-vlm export`: a trained CLIP checkpoint into another library's format.

    vlforge-vlm export --checkpoint runs/vlm/version_0/checkpoints/last.ckpt --format hf-vision --out clip_vision

``open_clip``: the whole CLIP in open_clip's hub layout (``open_clip.create_model("local-dir:<out>")``);
``hf-vision``: the image tower as a Hugging Face ``CLIPVisionModelWithProjection`` folder (a LLaVA vision tower,
``model.vision_from`` of the captioner's llava presets); ``hf-clip``: the whole CLIP as a Hugging Face ``CLIPModel``
folder with tokenizer and processor (transformers' zero-shot-image-classification pipeline loads it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from vlforge.common.errors import VLForgeError
from vlforge.vlm.hf_clip_export import export_hf_clip_checkpoint
from vlforge.vlm.hf_vision_export import export_hf_vision_checkpoint
from vlforge.vlm.mllm.export import export_hf_llava_checkpoint
from vlforge.vlm.open_clip_export import export_open_clip_checkpoint

EXPORTERS = {"open_clip": export_open_clip_checkpoint, "hf-vision": export_hf_vision_checkpoint,
             "hf-clip": export_hf_clip_checkpoint}
EXPORTERS["hf-llava"] = export_hf_llava_checkpoint  # an MLLM checkpoint as a Hugging Face LLaVA folder


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlforge-vlm export", exit_on_error=False, allow_abbrev=False,
                                     description="Export a trained CLIP checkpoint.")
    parser.add_argument("--checkpoint", required=True, help="a ContrastiveLitModule .ckpt")
    parser.add_argument("--format", required=True, choices=sorted(EXPORTERS))
    parser.add_argument("--out", required=True, help="the folder to write")
    parser.add_argument("--run_config", default=None,
                        help="the run's config.yaml when it is not in a parent folder of the checkpoint")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry; returns the exit code (2 with one line on a mistake)."""
    try:
        try:
            args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
        except argparse.ArgumentError as err:
            raise VLForgeError(str(err)) from None
        out = EXPORTERS[args.format](args.checkpoint, args.out, args.run_config)
    except VLForgeError as err:
        print(f"vlforge-vlm export: error: {err}", file=sys.stderr)
        return 2
    print(out)
    return 0
