"""Run under ``accelerate launch``: each process holds its slice of one fixed batch and computes
its advantages through the trainer's distributed path; process 0 writes the gathered result."""

from __future__ import annotations

import json
import sys

import torch
from accelerate import Accelerator
from accelerate.utils import gather, gather_object

from vlthinker.train.trainer import distributed_advantages


def fixed_batch(prompts: int = 8, generations: int = 4):
    generator = torch.Generator().manual_seed(7)
    total = prompts * generations
    accuracy = (torch.rand(total, generator=generator) < 0.5).float()
    accuracy[torch.arange(total) % 5 == 0] = torch.rand(total, generator=generator)[::5].round(
        decimals=1
    )
    fmt = (torch.rand(total, generator=generator) < 0.8).float()
    length = torch.rand(total, generator=generator)
    rewards = torch.stack([accuracy, fmt, length], dim=1)
    prompt = torch.arange(prompts).repeat_interleave(generations)
    inputs = [
        {"task_index": int(p % 3), "stage2_index": int(p % 2), "record_id": f"r{int(p)}"}
        for p in prompt
    ]
    return rewards, inputs, generations


def main(out_path: str) -> None:
    accelerator = Accelerator(cpu=True)
    rewards, inputs, generations = fixed_batch()
    per_process = len(inputs) // accelerator.num_processes
    local = slice(
        accelerator.process_index * per_process, (accelerator.process_index + 1) * per_process
    )
    gathered = gather(rewards[local])  # what TRL's _calculate_rewards returns
    batch = distributed_advantages(
        accelerator.process_index,
        gathered,
        inputs[local],
        generations,
        estimator="g2rpo",
        weights=[0.8, 0.1, 0.1],
        options={},
    )
    pieces = gather_object(batch.local_advantages.tolist())
    if accelerator.is_main_process:
        with open(out_path, "w") as handle:
            json.dump({"processes": accelerator.num_processes, "advantages": pieces}, handle)
    # Tear the gloo group down before exit: left to interpreter shutdown, its threads can abort
    # the process ("terminate called without an active exception").
    accelerator.wait_for_everyone()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
