"""DeepSpeed ZeRO from a few YAML fields: the DeepSpeed config is generated here and handed to Lightning's
DeepSpeedStrategy (which runs on CUDA only). The DDP presets need no code: configs/trainer/ddp*.yaml."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.strategies import DeepSpeedStrategy

from vlforge.common.errors import VLForgeError
from vlforge.common.extras import require_extra


def deepspeed_config(
    stage: int,
    *,
    offload_optimizer: bool = False,
    offload_parameters: bool = False,
    reduce_bucket_size: int = 200_000_000,
    allgather_bucket_size: int = 200_000_000,
    prefetch_bucket_size: int = 50_000_000,
    param_persistence_threshold: int = 100_000,
    overlap_comm: bool = True,
    bf16: bool = True,
    pin_memory: bool = True,
) -> dict[str, Any]:
    """The DeepSpeed config dict for ZeRO `stage` (1, 2 or 3).

    Offloading the optimizer (stage >= 1) or the parameters (stage 3 only) moves them to CPU memory. Bucket sizes are
    in elements. Batch size, gradient accumulation and clipping are filled in by Lightning from the Trainer.
    """
    if stage not in (1, 2, 3):
        raise VLForgeError(f"strategy.init_args.stage: ZeRO stage must be 1, 2 or 3, got {stage}")
    if offload_parameters and stage != 3:
        raise VLForgeError(f"strategy.init_args.offload_parameters: needs ZeRO stage 3, got stage {stage}")
    zero: dict[str, Any] = {
        "stage": stage,
        "overlap_comm": overlap_comm,
        "contiguous_gradients": True,
        "reduce_scatter": True,
        "reduce_bucket_size": int(reduce_bucket_size),
    }
    if stage == 3:
        zero.update(
            {
                "stage3_prefetch_bucket_size": int(prefetch_bucket_size),
                "stage3_param_persistence_threshold": int(param_persistence_threshold),
                "stage3_gather_16bit_weights_on_model_save": False,
            }
        )
    else:
        zero.update({"allgather_partitions": True, "allgather_bucket_size": int(allgather_bucket_size)})
    if offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": pin_memory}
    if offload_parameters:
        zero["offload_param"] = {"device": "cpu", "pin_memory": pin_memory}
    return {
        "zero_optimization": zero,
        "bf16": {"enabled": bf16},
        # any torch optimizer may be used with offloading (DeepSpeedCPUAdam is faster but optional)
        "zero_force_ds_cpu_optimizer": False,
        "zero_allow_untested_optimizer": True,
    }


class ZeroStrategy(DeepSpeedStrategy):
    """Lightning's DeepSpeedStrategy configured by `deepspeed_config(...)`; usable as a class_path in trainer YAML.

    `bf16` must agree with the Trainer's precision (bf16-mixed / bf16-true), checked when the run starts.
    """

    def __init__(
        self,
        stage: int = 2,
        offload_optimizer: bool = False,
        offload_parameters: bool = False,
        reduce_bucket_size: int = 200_000_000,
        allgather_bucket_size: int = 200_000_000,
        prefetch_bucket_size: int = 50_000_000,
        param_persistence_threshold: int = 100_000,
        overlap_comm: bool = True,
        bf16: bool = True,
        pin_memory: bool = True,
        logging_batch_size_per_gpu: int | str = "auto",
    ) -> None:
        require_extra("deepspeed", "the DeepSpeed ZeRO strategy")
        self.bf16 = bf16
        super().__init__(
            config=deepspeed_config(
                stage,
                offload_optimizer=offload_optimizer,
                offload_parameters=offload_parameters,
                reduce_bucket_size=reduce_bucket_size,
                allgather_bucket_size=allgather_bucket_size,
                prefetch_bucket_size=prefetch_bucket_size,
                param_persistence_threshold=param_persistence_threshold,
                overlap_comm=overlap_comm,
                bf16=bf16,
                pin_memory=pin_memory,
            ),
            logging_batch_size_per_gpu=logging_batch_size_per_gpu,
        )

    def setup_environment(self) -> None:
        precision = str(self.precision_plugin.precision)
        if self.bf16 != precision.startswith("bf16"):
            raise VLForgeError(
                f"strategy.init_args.bf16={self.bf16} disagrees with trainer.precision={precision}"
                " (use the bf16-mixed preset with bf16: true)"
            )
        super().setup_environment()
