"""One process of the DDP check of the shared prompt pass (tests/test_shared_prompt.py).

    RANK=r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=p python shared_pass_worker.py MODEL OUT

Each process loads the same small model with TRL's fused head, wraps it in DDP (gloo), scores its
own group of 4 rollouts with the shared prompt pass (two forwards through the DDP wrapper, one
backward) and rank 0 writes the averaged gradients that DDP leaves on the parameters.
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from trl.trainer.utils import add_fused_lm_head

from vlthinker.models.loading import load_policy
from vlthinker.train.shared_prompt import shared_prompt_batches


def group_batch(model, rank: int) -> dict:
    """Rank ``rank``'s group: one prompt (an image of 4 × 4 patches, 4 tokens after the merge,
    and text) and 4 rollouts, two of them right-padded; the same on every run (seeded by the
    rank)."""
    config = model.config
    generator = torch.Generator().manual_seed(rank)
    image_tokens = 4
    text = torch.randint(10, 200, (6,), generator=generator)
    prompt = torch.cat(
        [
            torch.tensor([config.vision_start_token_id]),
            torch.full((image_tokens,), config.image_token_id),
            torch.tensor([config.vision_end_token_id]),
            text,
        ]
    )
    completion = torch.randint(10, 200, (4, 5), generator=generator)
    mask = torch.ones(4, prompt.numel() + 5, dtype=torch.long)
    mask[2, -2:] = 0
    mask[3, -1:] = 0
    input_ids = torch.cat([prompt.expand(4, -1), completion], 1).masked_fill(mask == 0, 0)
    patch = 3 * 2 * 16 * 16
    pixels = torch.randn(16, patch, generator=generator)
    return {
        "input_ids": input_ids,
        "attention_mask": mask,
        "pixel_values": pixels.repeat(4, 1),
        "image_grid_thw": torch.tensor([[1, 4, 4]]).repeat(4, 1),
        "mm_token_type_ids": (input_ids == config.image_token_id).long(),
    }


def main() -> None:
    model_dir, out = sys.argv[1], sys.argv[2]
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model, _ = load_policy(model_dir, dtype="float32")
    add_fused_lm_head(model, temperature=1.0, outputs=("log_probs", "entropy"))
    model.train()
    wrapped = DistributedDataParallel(model)
    batch = group_batch(model, rank)
    ids, mask = batch.pop("input_ids"), batch.pop("attention_mask")
    logps, _ = shared_prompt_batches(wrapped, ids, mask, 5, **batch)
    weights = torch.randn(logps.shape, generator=torch.Generator().manual_seed(10 + rank))
    (logps * weights * mask[:, -5:]).sum().backward()
    if rank == 0:
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        torch.save(grads, out)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
