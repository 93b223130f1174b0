"""Where this process stands among the processes of one data-parallel run, and what they agree on.

A run on one device is the `SINGLE` cluster: every operation here is then a no-op, so the training loop has
one code path. Under torchrun (`handgesture.training.distributed`) each rank holds a `Cluster` from its
environment; the collectives are torch.distributed's (NCCL on CUDA, gloo on CPU).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Cluster:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device | None = None  # where collectives put their tensors (NCCL needs the rank's GPU)

    @property
    def is_main(self) -> bool:
        """Rank 0: the only one that writes (checkpoints, manifest, TensorBoard, artifacts)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls, device: torch.device) -> Cluster:
        """The rank torchrun started: RANK, WORLD_SIZE and LOCAL_RANK from its environment."""
        return cls(
            int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]), device
        )

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """`value` averaged over the ranks (in place)."""
        if self.distributed:
            dist.all_reduce(value)
            value /= self.world_size
        return value

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            dist.all_reduce(value)
        return value

    def any(self, *flags: bool) -> list[bool]:
        """Each flag, true if it is true on any rank (one small all-reduce)."""
        if not self.distributed:
            return list(flags)
        votes = torch.tensor([int(flag) for flag in flags], device=self.device)
        dist.all_reduce(votes, op=dist.ReduceOp.MAX)
        return [bool(vote) for vote in votes.tolist()]

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value`, on every rank."""
        if not self.distributed:
            return value
        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]


SINGLE = Cluster()
