"""Writes a real DeepSpeed ZeRO checkpoint on CPU (DeepSpeed engine directly with gloo: Lightning's DeepSpeedStrategy
needs CUDA), laid out as Lightning's DeepSpeedStrategy saves it: <out>/last.ckpt/{latest, checkpoint/*.pt}, the
LitModule wrapped as `_forward_module`, plus the run's config.yaml and the reference fp32 weights.

usage: python make_zero_checkpoint.py OUT_DIR PORT STAGE [STAGE ...]   (writes OUT_DIR/zero<STAGE>/...)
"""

import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

root, port, stages = Path(sys.argv[1]), sys.argv[2], [int(s) for s in sys.argv[3:]]
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
import deepspeed  # noqa: E402
from toy_lightning import ToyLitModule, ToyNet  # noqa: E402

from vlforge.common.strategies import deepspeed_config  # noqa: E402


class LightningLikeWrapper(torch.nn.Module):
    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self._forward_module = module

    def forward(self, x):
        return self._forward_module.net(x)


deepspeed.init_distributed(dist_backend="gloo")
for stage in stages:
    out = root / f"zero{stage}"
    torch.manual_seed(0)
    lit = ToyLitModule(ToyNet(in_features=8, hidden=16))
    config = deepspeed_config(stage, bf16=False, reduce_bucket_size=1000, allgather_bucket_size=1000)
    config["train_micro_batch_size_per_gpu"] = 4
    model = LightningLikeWrapper(lit)
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=torch.optim.AdamW(model.parameters(), lr=0.05), config=config
    )
    for _ in range(3):
        x = torch.randn(4, 8)
        loss = (engine(x) - x.sum(-1)).pow(2).mean()
        engine.backward(loss)
        engine.step()
    engine.save_checkpoint(str(out / "last.ckpt"), tag="checkpoint")
    with deepspeed.zero.GatheredParameters(list(model.parameters()), enabled=stage == 3):
        reference = {k: v.detach().clone().float() for k, v in lit.net.state_dict().items()}
    save_file(reference, str(out / "reference.safetensors"))
    (out / "config.yaml").write_text(
        "model:\n  class_path: toy_lightning.ToyLitModule\n  init_args:\n    net:\n"
        "      class_path: toy_lightning.ToyNet\n      init_args:\n        in_features: 8\n        hidden: 16\n"
    )
    print(f"zero{stage} checkpoint written")
