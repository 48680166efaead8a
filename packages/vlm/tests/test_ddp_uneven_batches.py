"""Two-process DDP (gloo) with uneven per-rank batches: skipped records leave ranks with different numbers of pairs,
or none at all, and only some ranks with hard negatives. The contrastive step must neither hang nor change the
gradient: after DDP's all-reduce every rank holds the single-process gradient of the global batch. BLIP's step
(ITC + ITM + LM) must not hang either: its ITC-only gradient is the single-process one, and with all three
objectives an empty rank adds nothing to ITM / LM and the gradient is finite. Lightning DDP fits of both modules:
test_ddp_fit.py."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from vlforge.vlm.lit_blip import BlipLitModule
from vlforge.vlm.lit_contrastive import ContrastiveLitModule
from vlforge.vlm.losses import clip_loss, siglip_loss
from vlforge.vlm.models import ContrastiveModel, OpenClipImageTower, OpenClipTextTower
from vlforge.vlm.models.blip import BlipPretrainingModel

TINY = {"embed_dim": 16,
        "vision_cfg": {"image_size": 16, "layers": 1, "width": 16, "patch_size": 8, "head_width": 8},
        "text_cfg": {"context_length": 12, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}}
TEXTS = ["a red circle", "a blue square", "a green star", "two grey diamonds", "a purple circle on black"]
NEGATIVES = ["a blue circle", "a red square"]


def _module(kind: str = "clip") -> ContrastiveLitModule:
    torch.manual_seed(0)
    if kind == "clip":
        return ContrastiveLitModule(ContrastiveModel(OpenClipImageTower(TINY), OpenClipTextTower(TINY)))
    model = BlipPretrainingModel(image_size=16, patch_size=8, text={"max_position_embeddings": 32}, max_length=16)
    if kind == "blip_itc":
        return BlipLitModule(model, itm_weight=0.0, lm_weight=0.0)
    return BlipLitModule(model)


def _batch(rows: list[int], negatives: list[str]) -> dict:
    images = torch.stack([torch.full((3, 16, 16), 0.1 * r) + 0.05 * torch.arange(16.0) for r in rows]) \
        if rows else torch.empty(0)
    return {"images": images, "texts": [TEXTS[r] for r in rows], "image_ids": [str(r) for r in rows],
            "negatives": negatives, "skipped": {} if rows else {"undecodable_image": 2}}


# per case: rank 0's rows and negatives, rank 1's rows and negatives
CASES = {"rank_1_empty": (([0, 1, 2], NEGATIVES), ([], [])),
         "uneven_negatives_on_one_rank": (([0, 1, 2], NEGATIVES), ([3], []))}


class _Step(nn.Module):
    """What Lightning's DDP wrapper does: forward = the module's training_step."""

    def __init__(self, module: ContrastiveLitModule) -> None:
        super().__init__()
        self.module = module

    def forward(self, batch: dict) -> torch.Tensor:
        return self.module.training_step(batch, 0)


def _grads(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.grad.clone() for k, p in module.named_parameters() if p.grad is not None}


def _worker(rank: int, port: int, results: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        for kind in ("clip", "blip_itc", "blip"):
            for name, per_rank in CASES.items():
                module = _module(kind)
                module.log = lambda *args, **kwargs: None  # no Trainer here
                # ITC only leaves BLIP's decoder and ITM head unused (Lightning: ddp_find_unused_parameters_true)
                ddp = DistributedDataParallel(_Step(module), find_unused_parameters=kind == "blip_itc")
                loss = ddp(_batch(*per_rank[rank]))
                loss.backward()
                results[(kind, name, rank)] = (loss.item(), _grads(module))
        # the losses alone: 3 pairs on rank 0, none on rank 1
        x, y = torch.nn.functional.normalize(torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(3)), dim=-1)
        x, y = (x, y) if rank == 0 else (x[:0], y[:0])
        results[("clip_local", rank)] = (clip_loss(x, y, torch.tensor(5.0), local_loss=True).item(), x.shape[0])
        results[("siglip", rank)] = (siglip_loss(x, y, torch.tensor(5.0), torch.tensor(-1.0)).item(), x.shape[0])
    finally:
        dist.destroy_process_group()


@pytest.mark.ddp
def test_uneven_and_empty_rank_batches_give_the_single_process_gradient(free_port):
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_worker, args=(free_port, results), nprocs=2, join=True)
        results = dict(results)
    for kind in ("clip", "blip_itc"):
        for name, ((rows0, negs0), (rows1, negs1)) in CASES.items():
            single = _module(kind)
            single.log = lambda *args, **kwargs: None
            loss = single.training_step(_batch(rows0 + rows1, negs0 + negs1), 0)
            loss.backward()
            expected = _grads(single)
            for rank in range(2):
                rank_loss, grads = results[(kind, name, rank)]
                assert rank_loss == pytest.approx(loss.item(), rel=1e-5), (kind, name, rank)
                assert set(grads) == set(expected), (kind, name, rank)
                for key, value in expected.items():
                    torch.testing.assert_close(grads[key], value, rtol=1e-4, atol=1e-6,
                                               msg=f"{kind} {name} rank {rank} {key}")
    for name in CASES:  # BLIP with ITM and LM: per-rank means, so no single-process equality; one finite gradient
        (loss0, grads0), (loss1, grads1) = results[("blip", name, 0)], results[("blip", name, 1)]
        assert torch.isfinite(torch.tensor([loss0, loss1])).all() and loss1 > 0, name
        if name == "rank_1_empty":  # rank 1: the global ITC loss only; rank 0: ITC + its ITM and LM
            itc = results[("blip_itc", name, 1)][0]
            assert loss1 == pytest.approx(itc, rel=1e-5) and loss0 > itc + 1.0
        assert set(grads0) == set(grads1) and grads0, name
        for key, value in grads0.items():
            assert torch.isfinite(value).all(), (name, key)
    x, y = torch.nn.functional.normalize(torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(3)), dim=-1)
    assert results[("clip_local", 1)] == (0.0, 0)
    assert results[("clip_local", 0)][0] == pytest.approx(clip_loss(x, y, torch.tensor(5.0)).item(), rel=1e-5)
    assert results[("siglip", 1)] == (0.0, 0)
    assert results[("siglip", 0)][0] == pytest.approx(
        siglip_loss(x, y, torch.tensor(5.0), torch.tensor(-1.0)).item(), rel=1e-5)
