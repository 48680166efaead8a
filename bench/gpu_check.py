"""The GPU check: four prepared measurements in one command, one JSON and one markdown table.

Parts (each its own script in bench/, run as a subprocess with a time limit, so one failure or overrun still
leaves the others' figures):

- ``clip``: CLIP ViT-B/16, 224 px, bf16, batch 256: vlforge vs ``open_clip_train`` samples/s and MFU on synthetic
  data (bench/clip_synthetic.py);
- ``caption``: a Qwen2-VL-2B-sized model (random weights, built locally): vlforge's batched generation vs naive
  one-image HF generate, captions/s, 30 new tokens (bench/caption_generation.py);
- ``preference``: preference step vs SFT step time at 1.1 B parameters, precomputed reference
  (bench/preference_step.py);
- ``deepspeed``: DeepSpeed ZeRO-2 and ZeRO-3 fit + export + reload of a 0.94 B Qwen2 LM through Lightning, max weight
  difference (bench/deepspeed_fit.py).

``--dry-run`` runs every part's code path on CPU at tiny sizes (tests/test_bench_gpu_check.py).

    bash bench/gpu_check.sh --out bench/results/gpu            # on one H100 / H200, under 8 minutes
    bash bench/gpu_check.sh --dry-run --out /tmp/gpu_dry       # CPU
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# (part, script, GPU arguments, dry-run arguments, GPU time limit in seconds)
PARTS = {
    "clip": ("clip_synthetic.py", ["--model", "ViT-B-16", "--batch-size", "256", "--steps", "30", "--workers", "8"],
             ["--dry-run"], 120),
    "caption": ("caption_generation.py",
                ["--device", "cuda", "--model", "qwen2_vl_2b", "--images", "128", "--batch-size", "64"],
                ["--device", "cpu", "--model", "qwen2_vl_2b", "--tiny-config", "--images", "4", "--batch-size", "2",
                 "--max-new-tokens", "4"], 120),
    "preference": ("preference_step.py", [], ["--dry-run"], 100),
    "deepspeed": ("deepspeed_fit.py", ["--model", "lm1b", "--steps", "10"], ["--model", "lm1b", "--steps", "2",
                                                                              "--dry-run"], 140),
}


def run_part(name: str, out: Path, dry_run: bool) -> dict:
    script, gpu_args, dry_args, limit = PARTS[name]
    target = out / name if name == "deepspeed" else out / f"{name}.json"
    command = [sys.executable, str(BENCH / script), *(dry_args if dry_run else gpu_args), "--out", str(target)]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=None if dry_run else limit,
                              env=dict(os.environ, TOKENIZERS_PARALLELISM="false"))
    except subprocess.TimeoutExpired:
        return {"status": f"timed out after {limit} s", "seconds": time.perf_counter() - start}
    record: dict = {"seconds": round(time.perf_counter() - start, 1)}
    (out / f"{name}.log").write_text(done.stdout + done.stderr)
    result_file = target / "results.json" if name == "deepspeed" else target
    if done.returncode != 0 or not result_file.is_file():
        record["status"] = f"failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}"
        return record
    record["status"] = "ok"
    record["result"] = json.loads(result_file.read_text())
    return record


def _fmt(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def markdown(results: dict) -> str:
    """One table row per figure."""
    rows = ["| part | figure | vlforge | peer / baseline | ratio | status |", "|---|---|---|---|---|---|"]
    part = results["parts"]
    clip = part.get("clip", {})
    if clip.get("status") == "ok":
        r = clip["result"]
        rows.append(f"| clip {r['model']} b{r['batch_size']} {r['precision']} | samples/s (MFU) | "
                    f"{r['vlforge']['samples_per_s']:.1f} ({_fmt(r['vlforge']['mfu'])}) | open_clip_train "
                    f"{r['open_clip']['samples_per_s']:.1f} ({_fmt(r['open_clip']['mfu'])}) | "
                    f"{r['ratio_vlforge_over_open_clip']:.2f}× | ok |")
    caption = part.get("caption", {})
    if caption.get("status") == "ok":
        r = caption["result"]
        rows.append(f"| caption {r['model']} ({r['parameters_m']} M) b{r['batch_size']} | captions/s, "
                    f"{r['new_tokens']} new tokens | {r['batched_captions_per_s']} | naive HF generate "
                    f"{r['naive_captions_per_s']} | {r['speedup']}× | ok ({r['identical_captions']}/{r['images']} "
                    "identical) |")
    preference = part.get("preference", {})
    if preference.get("status") == "ok":
        r = preference["result"]
        rows.append(f"| preference ({r['parameters'] / 1e9:.2f} B, precomputed reference) | step s | "
                    f"{r['preference_step_s']:.3f} | SFT step {r['sft_step_s']:.3f} | "
                    f"{r['ratio_preference_over_sft']:.2f}× (goal ≤ 1.1×) | ok |")
    deepspeed = part.get("deepspeed", {})
    if deepspeed.get("status") == "ok":
        for r in deepspeed["result"]:
            rows.append(f"| deepspeed ZeRO-{r['stage']} ({r['parameters'] / 1e9:.2f} B) | step s; export + reload s;"
                        f" max weight diff | {r['seconds_per_step']:.3f}; {r['export_and_reload_s']:.1f}; "
                        f"{r['max_abs_diff_export_vs_live']:.3g} | — | — | ok |")
    for name, record in part.items():
        if record.get("status") != "ok":
            rows.append(f"| {name} | — | — | — | — | {record.get('status')} |")
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "gpu")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {', '.join(PARTS)}")
    parser.add_argument("--dry-run", action="store_true", help="every part on CPU at tiny sizes")
    args = parser.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part {unknown[0]!r} (known: {', '.join(PARTS)})")
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        parser.error("no CUDA device; use --dry-run on this machine")
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"dry_run": args.dry_run, "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
               "torch": torch.__version__, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "parts": {}}
    for name in parts:
        print(f"[gpu_check] {name} ...", flush=True)
        results["parts"][name] = run_part(name, args.out, args.dry_run)
        print(f"[gpu_check] {name}: {results['parts'][name]['status']} "
              f"({results['parts'][name]['seconds']:.0f} s)", flush=True)
    (args.out / "gpu_check.json").write_text(json.dumps(results, indent=1) + "\n")
    table = markdown(results)
    (args.out / "gpu_check.md").write_text(table)
    print(table)
    failed = [n for n, r in results["parts"].items() if r["status"] != "ok"]
    if failed:
        sys.exit(f"gpu_check: {', '.join(failed)} did not finish; see {args.out}/<part>.log")


if __name__ == "__main__":
    main()
