"""The shared prompt pass against TRL's scoring at the 8B recipe's shape, side by side.

    python benchmarks/scale_step.py [--image-side 1024] [--completion 384] [--hidden 384] ...

One group as the recipe scores it: a Qwen3-VL with the 8B model's vocabulary (151,936), one image
at the recipe's pixel bound (``data.max_pixels`` 1,048,576 = 1024 × 1024 px → 4,096 patches of
16 px → 1,024 image tokens after the 2 × 2 merge), an instruction, and 8 rollouts of a few hundred
tokens (lengths drawn between half and all of ``--completion``, right-padded as TRL pads them);
text and vision widths small enough for a CPU. Both paths run the scoring forward + backward of
a training step, with TRL's fused LM head (no ``[rows, T, vocab]`` logits in either; only the
scored positions projected, as on CUDA) and, as in the 8B config, non-reentrant activation
checkpointing and a trained vision tower:

- ``trl``: ``GRPOTrainer._get_per_token_logps_and_entropies``, every row its prompt + completion;
- ``shared``: :func:`vlthinker.train.shared_prompt.shared_prompt_batches`, one prompt pass.

Printed: log-probs' and entropies' largest difference between the paths, the median step time of
each and their ratio, the peak memory of each (CUDA: ``max_memory_allocated``; CPU: each path in
its own process, peak resident memory over the resident memory before its first step), the
share of scored tokens that are prompt, and the forward FLOPs of each (matmuls of the vision
tower, the language layers, attention and the LM head) for this model and, with the same
function, for Qwen3-VL-8B at the same token counts: the projection in docs/usage.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch

SPECIAL = {
    "<|endoftext|>": 0,
    "<|im_start|>": 1,
    "<|im_end|>": 2,
    "<|vision_start|>": 3,
    "<|vision_end|>": 4,
    "<|image_pad|>": 5,
    "<|video_pad|>": 6,
}
VOCAB = 151_936  # Qwen3-VL-8B's


@dataclass(frozen=True)
class Shape:
    """Widths of a Qwen3-VL (language and vision) for the FLOP count."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vision_hidden: int
    vision_layers: int
    vision_intermediate: int
    vocab: int = VOCAB


# Qwen3-VL-8B-Instruct's config.json (text and vision).
QWEN3_VL_8B = Shape(
    hidden=4096,
    layers=36,
    heads=32,
    kv_heads=8,
    head_dim=128,
    intermediate=12288,
    vision_hidden=1152,
    vision_layers=27,
    vision_intermediate=4304,
)


def forward_flops(
    shape: Shape, patches: int, images: int, rows: int, prompt: int, completion: float, shared: bool
) -> dict[str, float]:
    """Forward FLOPs (2 per multiply-add) of scoring ``rows`` rollouts of one prompt of ``prompt``
    tokens with one image of ``patches`` patches, completions of ``completion`` tokens on average:
    TRL's path runs every row's image and prompt; the shared pass runs them ``images`` times (once
    per distinct prompt) and each row's completion (plus the re-run last prompt token)."""
    d, h = shape.hidden, shape.head_dim
    projections = d * h * (shape.heads + 2 * shape.kv_heads) + shape.heads * h * d
    layer_per_token = shape.layers * 2 * (projections + 3 * d * shape.intermediate)
    v = shape.vision_hidden
    vision_per_patch = shape.vision_layers * 2 * (4 * v * v + 2 * v * shape.vision_intermediate)
    vision_attention = shape.vision_layers * 4 * patches * patches * v
    encodes = images if shared else rows
    prompt_tokens = images * prompt if shared else rows * prompt
    completion_tokens = rows * (completion + (1 if shared else 0))
    # attention: q·k and p·v over the keys each query sees (causal)
    qk = 4 * shape.layers * shape.heads * h
    if shared:
        attention = qk * (
            images * prompt * prompt / 2 + rows * completion * (prompt + completion / 2)
        )
    else:
        attention = qk * rows * (prompt + completion) ** 2 / 2
    return {
        "vision": encodes * (patches * vision_per_patch + vision_attention),
        "layers": (prompt_tokens + completion_tokens) * layer_per_token,
        "attention": attention,
        "lm_head": rows * completion * 2 * d * shape.vocab,
    }


def bench_shape(args: argparse.Namespace) -> Shape:
    """The benchmark model's widths: heads of 64, a KV head per 4 heads, MLPs 3× (text) and 4×
    (vision) wide."""
    return Shape(
        hidden=args.hidden,
        layers=args.layers,
        heads=args.hidden // 64,
        kv_heads=max(1, args.hidden // 256),
        head_dim=64,
        intermediate=3 * args.hidden,
        vision_hidden=args.vision_hidden,
        vision_layers=args.vision_layers,
        vision_intermediate=4 * args.vision_hidden,
    )


def build(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The model (fused head, checkpointing, train mode) and one group's scoring inputs."""
    import trl.trainer.utils as trl_utils
    from trl.trainer.utils import add_fused_lm_head

    from vlthinker.models.tiny import TinyVLMSpec, qwen3vl_config

    # TRL's fused head projects only the scored positions where Triton runs (CUDA) and every
    # position elsewhere; score only the scored ones here too, so both paths pay the LM head
    # as they do on the GPUs the recipe runs on.
    trl_utils._use_triton = lambda device: True

    shape = bench_shape(args)
    spec = TinyVLMSpec(
        hidden_size=shape.hidden,
        layers=shape.layers,
        heads=shape.heads,
        kv_heads=shape.kv_heads,
        intermediate_size=shape.intermediate,
        vision_hidden_size=shape.vision_hidden,
        vision_layers=shape.vision_layers,
        vision_heads=shape.vision_hidden // shape.head_dim,
        vision_intermediate_size=shape.vision_intermediate,
        image_size=args.image_side,
    )
    from transformers import Qwen3VLForConditionalGeneration

    torch.manual_seed(0)
    config = qwen3vl_config(spec, SPECIAL, VOCAB)
    config._attn_implementation = "sdpa"
    model = Qwen3VLForConditionalGeneration(config).to(args.device)
    add_fused_lm_head(model, temperature=1.0, outputs=("log_probs", "entropy"))
    model.train()
    if args.checkpointing:
        model.activation_checkpointing_enable({"use_reentrant": False})

    generator = torch.Generator().manual_seed(1)
    side = args.image_side // 16
    image_tokens = side * side // 4
    text = torch.randint(16, VOCAB, (args.prompt_text,), generator=generator)
    prompt = torch.cat(
        [
            torch.tensor([1, 100, 101, 3]),
            torch.full((image_tokens,), 5),
            torch.tensor([4]),
            text,
            torch.tensor([2, 1, 102, 101]),
        ]
    )
    rows, length = args.rollouts, args.completion
    completion = torch.randint(16, VOCAB, (rows, length), generator=generator)
    lengths = torch.randint(length // 2, length + 1, (rows,), generator=generator)
    completion_mask = torch.arange(length)[None, :] < lengths[:, None]
    completion = completion.masked_fill(~completion_mask, 0)
    input_ids = torch.cat([prompt.expand(rows, -1), completion], dim=1)
    attention_mask = torch.cat(
        [torch.ones(rows, prompt.numel(), dtype=torch.long), completion_mask.long()], dim=1
    )
    pixels = torch.randn(side * side, 3 * 2 * 16 * 16, generator=generator)
    inputs = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "logits_to_keep": length,
        "pixel_values": pixels.repeat(rows, 1),  # TRL's batch: each row carries its image
        "image_grid_thw": torch.tensor([[1, side, side]]).repeat(rows, 1),
        "num_images": [1] * rows,
        "mm_token_type_ids": (input_ids == 5).long(),
    }
    inputs = {k: v.to(args.device) if torch.is_tensor(v) else v for k, v in inputs.items()}
    return model, inputs


def lm_head_alone(model: Any, inputs: dict[str, Any]):
    """TRL's fused LM head (its chunked log-prob function) alone on as many positions as both
    paths score, from random hidden states: the part of a step the shared pass cannot shrink."""
    from trl.trainer.utils import _CHUNKED_LOGPROB_CHUNK_SIZE, _ChunkedLogProbFunction

    keep = inputs["logits_to_keep"]
    scored = int(inputs["attention_mask"][:, -keep:].sum())
    weight = model.get_output_embeddings().weight
    generator = torch.Generator().manual_seed(3)
    hidden = torch.randn(scored, weight.size(1), generator=generator).to(weight.device)
    hidden.requires_grad_(True)
    labels = torch.randint(0, weight.size(0), (scored,), generator=generator).to(weight.device)
    outputs = ("log_probs", "entropy")
    per_token = _ChunkedLogProbFunction.apply(
        hidden, weight, None, labels, 1.0, _CHUNKED_LOGPROB_CHUNK_SIZE, None, 1.0, outputs
    )
    return per_token[0], per_token[1]


def score(path: str, model: Any, inputs: dict[str, Any], batch_size: int):
    """Log-probs and entropies of the rows by ``path`` (with gradient)."""
    from trl import GRPOTrainer

    if path == "head":
        return lm_head_alone(model, inputs)

    from vlthinker.train.shared_prompt import shared_prompt_batches

    rows = (inputs["input_ids"], inputs["attention_mask"], inputs["logits_to_keep"], batch_size)
    rest = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
    rest.pop("logits_to_keep")
    if path == "shared":
        scored = shared_prompt_batches(model, *rows, compute_entropy=True, **rest)
        if scored is None:
            raise SystemExit("the shared pass fell back: see the log line above")
        return scored
    trl_scoring = GRPOTrainer._get_per_token_logps_and_entropies.__wrapped__
    owner = SimpleNamespace(accelerator=SimpleNamespace(autocast=contextlib.nullcontext))
    logps, entropies, _ = trl_scoring(owner, model, *rows, compute_entropy=True, **rest)
    return logps, entropies


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def run_path(args: argparse.Namespace) -> dict[str, Any]:
    """One path in this process: a warm-up step, then ``--steps`` timed forward + backward."""
    torch.set_num_threads(args.threads) if args.threads else None
    model, inputs = build(args)
    cuda = args.device.startswith("cuda")
    mask = inputs["attention_mask"][:, -inputs["logits_to_keep"] :].bool()
    if args.path == "head":
        mask = torch.ones(int(mask.sum()), dtype=torch.bool, device=mask.device)
    weights = torch.randn(mask.shape, generator=torch.Generator().manual_seed(2)).to(mask.device)
    weights = weights * mask
    baseline = resident_bytes()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
    times, first = [], None
    for step in range(args.steps + 1):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        logps, entropies = score(args.path, model, inputs, args.batch_size)
        loss = (logps * weights).sum() + 0.01 * (entropies * mask).sum()
        loss.backward()
        if cuda:
            torch.cuda.synchronize()
        if step == 0:
            first = (logps.detach().cpu(), entropies.detach().cpu())
        else:
            times.append(time.perf_counter() - start)
    if cuda:
        peak = torch.cuda.max_memory_allocated() - baseline
    else:  # ru_maxrss is in KiB on Linux
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline
    torch.save(first, args.scores_out)
    keep = inputs["logits_to_keep"]
    lengths = inputs["attention_mask"][:, -keep:].sum(1)
    prompt = inputs["input_ids"].size(1) - keep
    return {"times": times, "peak_bytes": peak, "lengths": lengths.tolist(), "prompt": prompt}


def child(args: argparse.Namespace, path: str, scores_out: str) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--path", path, "--scores-out", scores_out]
    for key in (
        "image_side",
        "prompt_text",
        "completion",
        "rollouts",
        "hidden",
        "layers",
        "vision_hidden",
        "vision_layers",
        "batch_size",
        "steps",
        "device",
        "threads",
    ):
        argv += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    if not args.checkpointing:
        argv.append("--no-checkpointing")
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{path} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def gib(count: float) -> str:
    return f"{count / 2**30:.2f} GiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-side", type=int, default=1024, help="px; 1024 = data.max_pixels")
    parser.add_argument("--prompt-text", type=int, default=96, help="instruction tokens")
    parser.add_argument("--completion", type=int, default=256, help="longest rollout, tokens")
    parser.add_argument("--rollouts", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vision-hidden", type=int, default=128)
    parser.add_argument("--vision-layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8, help="rows per scoring chunk")
    parser.add_argument("--steps", type=int, default=1, help="timed steps per path and round")
    parser.add_argument("--rounds", type=int, default=2, help="shared, trl, shared, trl, …")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--no-checkpointing", dest="checkpointing", action="store_false")
    parser.add_argument("--path", choices=["shared", "trl", "head"], help=argparse.SUPPRESS)
    parser.add_argument("--scores-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.path:  # a child: one path, its numbers as one JSON line
        print(json.dumps(run_path(args)))
        return

    import tempfile

    paths = ("shared", "trl", "head")
    results: dict[str, dict[str, list]] = {p: {"times": [], "peaks": []} for p in paths}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):
            for path in paths:
                got = child(args, path, f"{folder}/{path}.pt")
                results[path]["times"] += got["times"]
                results[path]["peaks"].append(got["peak_bytes"])
                results[path]["lengths"], results[path]["prompt"] = got["lengths"], got["prompt"]
        shared_scores = torch.load(f"{folder}/shared.pt")
        trl_scores = torch.load(f"{folder}/trl.pt")

    side = args.image_side // 16
    patches, image_tokens = side * side, side * side // 4
    prompt = results["trl"]["prompt"]
    lengths = torch.tensor(results["trl"]["lengths"])
    mean_completion = float(lengths.double().mean())
    log_diff = float((shared_scores[0] - trl_scores[0]).abs().max())
    entropy_diff = float((shared_scores[1] - trl_scores[1]).abs().max())

    print(
        f"shape: vocab {VOCAB:,}; image {args.image_side}×{args.image_side} px = {patches:,} "
        f"patches = {image_tokens:,} image tokens; prompt {prompt:,} tokens; {args.rollouts} "
        f"rollouts of {mean_completion:.0f} tokens on average (≤ {args.completion}); text "
        f"{args.layers} layers × {args.hidden}, vision {args.vision_layers} × "
        f"{args.vision_hidden}; checkpointing {'on' if args.checkpointing else 'off'}; "
        f"{args.device}, {args.rounds} rounds × {args.steps} steps"
    )
    print(f"log-probs max |shared − trl| {log_diff:.1e}; entropies {entropy_diff:.1e}")
    trl_tokens = args.rollouts * prompt + int(lengths.sum())
    shared_tokens = prompt - 1 + int(lengths.sum()) + args.rollouts
    print("| path | step (fwd + bwd) | peak memory | scored tokens | prompt share |")
    print("|---|---:|---:|---:|---:|")
    medians = {}
    for path, tokens, prompt_tokens in (
        ("trl", trl_tokens, args.rollouts * prompt),
        ("shared", shared_tokens, prompt - 1 + args.rollouts),
    ):
        medians[path] = statistics.median(results[path]["times"])
        peak = max(results[path]["peaks"])
        print(
            f"| {path} | {medians[path]:.2f} s | {gib(peak)} | {tokens:,} | "
            f"{prompt_tokens / tokens:.0%} |"
        )
    head = statistics.median(results["head"]["times"])
    rest = {path: medians[path] - head for path in ("trl", "shared")}
    ratio = f"{rest['trl'] / rest['shared']:.2f}×" if rest["shared"] > 0 else "n/a (within noise)"
    print(
        f"LM head alone (the {int(lengths.sum()):,} positions both paths score): {head:.2f} s; "
        f"without it trl {rest['trl']:.2f} s, shared {rest['shared']:.2f} s → {ratio} on the rest"
    )
    spread = {p: (min(r["times"]), max(r["times"])) for p, r in results.items()}
    print(
        f"speed-up trl / shared: {medians['trl'] / medians['shared']:.2f}× "
        f"(step times trl {spread['trl'][0]:.2f}–{spread['trl'][1]:.2f} s, shared "
        f"{spread['shared'][0]:.2f}–{spread['shared'][1]:.2f} s); peak memory shared / trl "
        f"{max(results['shared']['peaks']) / max(results['trl']['peaks']):.2f}"
    )
    print("forward FLOPs (T = 10^12) by part, trl → shared, at these token counts:")
    for name, shape in (("this model", bench_shape(args)), ("Qwen3-VL-8B", QWEN3_VL_8B)):
        parts = {
            mode: forward_flops(
                shape, patches, 1, args.rollouts, prompt, mean_completion, mode == "shared"
            )
            for mode in ("trl", "shared")
        }
        total = {mode: sum(p.values()) for mode, p in parts.items()}
        split = ", ".join(
            f"{part} {parts['trl'][part] / 1e12:.2f} → {parts['shared'][part] / 1e12:.2f}"
            for part in parts["trl"]
        )
        print(
            f"  {name}: {split}; total {total['trl'] / 1e12:.2f} → {total['shared'] / 1e12:.2f} "
            f"({total['trl'] / total['shared']:.2f}×)"
        )


if __name__ == "__main__":
    main()
