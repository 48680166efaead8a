"""CLIP and SigLIP losses against their equations (direct loops) and against open_clip, in one process and in a
real 2-process gloo DDP group."""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from open_clip.loss import ClipLoss as OpenClipLoss
from open_clip.loss import SigLipLoss as OpenSigLipLoss

from vlforge.vlm.losses import clip_loss, siglip_loss


def _features(n: int, d: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (F.normalize(torch.randn(n, d, generator=g), dim=-1), F.normalize(torch.randn(n, d, generator=g), dim=-1))


def _direct_clip(x, y, s, negatives=None) -> float:
    """The InfoNCE equation written as plain python sums."""
    n = x.shape[0]
    columns = y if negatives is None else torch.cat([y, negatives])
    i2t = t2i = 0.0
    for i in range(n):
        i2t -= (s * x[i] @ y[i]).item() - math.log(sum(math.exp((s * x[i] @ c).item()) for c in columns))
        t2i -= (s * y[i] @ x[i]).item() - math.log(sum(math.exp((s * y[i] @ x[j]).item()) for j in range(n)))
    return (i2t / n + t2i / n) / 2


def _direct_siglip(x, y, s, b, negatives=None) -> float:
    columns = y if negatives is None else torch.cat([y, negatives])
    total = 0.0
    for i in range(x.shape[0]):
        for j in range(columns.shape[0]):
            z = 1.0 if i == j else -1.0
            total -= math.log(1 / (1 + math.exp(-z * (s * x[i] @ columns[j] + b).item())))
    return total / x.shape[0]


def test_clip_loss_matches_equation_and_open_clip():
    x, y = _features(6)
    s = torch.tensor(10.0)
    ours = clip_loss(x, y, s)
    assert ours.item() == pytest.approx(_direct_clip(x, y, s), rel=1e-5)
    assert ours.item() == pytest.approx(OpenClipLoss()(x, y, s).item(), rel=1e-6)
    assert clip_loss(x, y, s, local_loss=True).item() == pytest.approx(ours.item(), rel=1e-6)


def test_clip_loss_with_hard_negatives_matches_equation_and_is_larger():
    x, y = _features(5)
    negatives = _features(3, seed=1)[0]
    s = torch.tensor(5.0)
    ours = clip_loss(x, y, s, negative_text_features=negatives)
    assert ours.item() == pytest.approx(_direct_clip(x, y, s, negatives), rel=1e-5)
    assert ours.item() > clip_loss(x, y, s).item()


def test_siglip_loss_matches_equation_and_open_clip():
    x, y = _features(5)
    s, b = torch.tensor(10.0), torch.tensor(-3.0)
    ours = siglip_loss(x, y, s, b)
    assert ours.item() == pytest.approx(_direct_siglip(x, y, s, b), rel=1e-5)
    assert ours.item() == pytest.approx(OpenSigLipLoss()(x, y, s, b).item(), rel=1e-6)
    negatives = _features(2, seed=3)[0]
    with_negatives = siglip_loss(x, y, s, b, negative_text_features=negatives)
    assert with_negatives.item() == pytest.approx(_direct_siglip(x, y, s, b, negatives), rel=1e-5)


def test_gradients_match_open_clip_in_one_process():
    x, y = _features(4)
    for ours_fn, theirs_fn in ((lambda a, t, s: clip_loss(a, t, s), lambda a, t, s: OpenClipLoss()(a, t, s)),
                               (lambda a, t, s: siglip_loss(a, t, s, torch.tensor(-2.0)),
                                lambda a, t, s: OpenSigLipLoss()(a, t, s, torch.tensor(-2.0)))):
        grads = []
        for fn in (ours_fn, theirs_fn):
            a, t, s = x.clone().requires_grad_(), y.clone().requires_grad_(), torch.tensor(7.0, requires_grad=True)
            fn(a, t, s).backward()
            grads.append((a.grad, t.grad, s.grad))
        for mine, theirs in zip(*grads, strict=True):
            torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)


def _ddp_worker(rank: int, world_size: int, port: int, results: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        x_all, y_all = _features(4 * world_size, seed=7)
        x, y = x_all[rank * 4:(rank + 1) * 4], y_all[rank * 4:(rank + 1) * 4]
        out = {}
        cases = {
            "clip": (lambda a, t, s: clip_loss(a, t, s),
                     lambda a, t, s: OpenClipLoss(gather_with_grad=True, rank=rank, world_size=world_size)(a, t, s)),
            "clip_local": (lambda a, t, s: clip_loss(a, t, s, local_loss=True),
                           lambda a, t, s: OpenClipLoss(local_loss=True, gather_with_grad=True, rank=rank,
                                                        world_size=world_size)(a, t, s)),
            "siglip": (lambda a, t, s: siglip_loss(a, t, s, torch.tensor(-2.0)),
                       lambda a, t, s: OpenSigLipLoss(rank=rank, world_size=world_size)(a, t, s, torch.tensor(-2.0))),
        }
        for name, fns in cases.items():
            for label, fn in zip(("ours", "open_clip"), fns, strict=True):
                a, t, s = x.clone().requires_grad_(), y.clone().requires_grad_(), torch.tensor(7.0, requires_grad=True)
                loss = fn(a, t, s)
                loss.backward()
                out[(name, label)] = (loss.item(), a.grad.clone(), t.grad.clone(), s.grad.clone())
        # hard negatives of different counts per rank: ours against the single-process loss on the whole batch
        negatives = _features(2 + rank, seed=11 + rank)[0]
        out["negatives"] = clip_loss(x, y, torch.tensor(7.0), negative_text_features=negatives).item()
        results[rank] = out
    finally:
        dist.destroy_process_group()


@pytest.mark.ddp
def test_losses_match_open_clip_in_two_process_ddp(free_port):
    world_size = 2
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_ddp_worker, args=(world_size, free_port, results), nprocs=world_size, join=True)
        results = dict(results)
    x_all, y_all = _features(8, seed=7)
    single = clip_loss(x_all, y_all, torch.tensor(7.0)).item()
    for rank in range(world_size):
        out = results[rank]
        for name in ("clip", "clip_local", "siglip"):
            mine, theirs = out[(name, "ours")], out[(name, "open_clip")]
            assert mine[0] == pytest.approx(theirs[0], rel=1e-5), (name, rank)
            for g_mine, g_theirs in zip(mine[1:], theirs[1:], strict=True):
                torch.testing.assert_close(g_mine, g_theirs, rtol=1e-4, atol=1e-6)
        assert out[("clip", "ours")][0] == pytest.approx(single, rel=1e-5)
        assert out[("clip_local", "ours")][0] != pytest.approx(single, rel=1e-3)  # local rows only
    negatives = torch.cat([_features(2, seed=11)[0], _features(3, seed=12)[0]])
    expected = clip_loss(x_all, y_all, torch.tensor(7.0), negative_text_features=negatives).item()
    assert results[0]["negatives"] == pytest.approx(expected, rel=1e-5)
    assert results[1]["negatives"] == pytest.approx(expected, rel=1e-5)
