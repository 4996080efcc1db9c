"""Build a tiny Qwen3-VL offline: byte-level BPE tokenizer, chat template, processor, model.

The model is transformers' own ``Qwen3VLForConditionalGeneration`` at a few million parameters,
so the embedded default takes exactly the code path a real Qwen3-VL-8B takes. The tokenizer's
vocabulary is trained on the synthetic suite's prompts and reference solutions plus the chat and
vision special tokens; nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from vlthinker.data import PromptConfig, Record, prompt_text, synthetic, target_text
from vlthinker.models.loading import VISION_TOKENS
from vlthinker.models.processor import save_processor

SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
# Structure tags as whole tokens: the format reward hinges on them; one token is easier to learn.
TAG_TOKENS = ("<think>", "</think>", "<thinking>", "</thinking>", "<answer>", "</answer>")

# Qwen's chat template, reduced to what the project uses: text and image entries per turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass
class TinyVLMSpec:
    """Sizes of the tiny model (defaults: ≈4.6 M parameters, ≈18 MB in float32)."""

    vocab_size: int = 1024
    hidden_size: int = 192
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    intermediate_size: int = 512
    vision_hidden_size: int = 192
    vision_layers: int = 4
    vision_heads: int = 4
    vision_intermediate_size: int = 512
    patch_size: int = 16
    image_size: int = 128  # images are resized to this square (a multiple of 2 × patch_size)
    tokenizer_items: int = 3000
    seed: int = 0


def corpus(records: Iterable[Record]) -> Iterable[str]:
    """Texts the tokenizer is trained on: prompts and targets in both prompt styles."""
    configs = (PromptConfig(), PromptConfig(think_tag="thinking", default_reasoning=False))
    for record in records:
        for config in configs:
            yield prompt_text(record, config)
            yield target_text(record, config)


def build_tokenizer(spec: TinyVLMSpec):
    """A byte-level BPE tokenizer (digits split one by one, as Qwen's) with the chat template."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    half = (
        spec.tokenizer_items // 2
    )  # easy and hard items: words and codes, small and large numbers
    items = synthetic.generate(half, seed=spec.seed + 7_777, difficulty=0.0) + synthetic.generate(
        half, seed=spec.seed + 7_778, difficulty=1.0
    )
    tokenizer.train_from_iterator(corpus(items), trainer=trainer)
    # Tags are whole tokens but not "special": decoding with skip_special_tokens keeps them.
    tokenizer.add_tokens([AddedToken(tag, special=False, normalized=False) for tag in TAG_TOKENS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=[*VISION_TOKENS, "<|im_start|>"],
        padding_side="left",  # Qwen's rope index needs left padding for batched generation
        model_max_length=4096,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_processor(spec: TinyVLMSpec, tokenizer):
    """Qwen3-VL's processor with the Pillow image backend (no torchvision needed on CPU)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    from vlthinker.models.processor import make_processor

    pixels = spec.image_size * spec.image_size
    image_processor = Qwen2VLImageProcessorPil(
        size={"shortest_edge": pixels, "longest_edge": pixels},
        patch_size=spec.patch_size,
        temporal_patch_size=2,
        merge_size=2,
    )
    return make_processor(image_processor, tokenizer, CHAT_TEMPLATE)


def qwen3vl_config(spec: TinyVLMSpec, ids: dict[str, int], vocab_size: int):
    """The ``Qwen3VLConfig`` of ``spec``, with the special tokens' ids ``ids``."""
    from transformers import Qwen3VLConfig

    head_dim = spec.hidden_size // spec.heads
    half = head_dim // 2
    section = [
        half - 2 * (half // 3),
        half // 3,
        half // 3,
    ]  # temporal, height, width (sums to half)
    return Qwen3VLConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": spec.hidden_size,
            "intermediate_size": spec.intermediate_size,
            "num_hidden_layers": spec.layers,
            "num_attention_heads": spec.heads,
            "num_key_value_heads": spec.kv_heads,
            "head_dim": head_dim,
            "max_position_embeddings": 4096,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": section,
                "mrope_interleaved": True,
            },
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": spec.vision_layers,
            "hidden_size": spec.vision_hidden_size,
            "intermediate_size": spec.vision_intermediate_size,
            "num_heads": spec.vision_heads,
            "patch_size": spec.patch_size,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": spec.hidden_size,
            "num_position_embeddings": (spec.image_size // spec.patch_size) ** 2,
            "deepstack_visual_indexes": [spec.vision_layers // 2],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )


def build_model(spec: TinyVLMSpec, tokenizer):
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    torch.manual_seed(spec.seed)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    model = Qwen3VLForConditionalGeneration(qwen3vl_config(spec, ids, len(tokenizer)))
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.bos_token_id = None
    return model


def build_tiny_vlm(out_dir: str | Path, spec: TinyVLMSpec | None = None) -> Path:
    """Build an untrained tiny Qwen3-VL with its processor and save both to ``out_dir``."""
    import json

    spec = spec or TinyVLMSpec()
    tokenizer = build_tokenizer(spec)
    processor = build_processor(spec, tokenizer)
    model = build_model(spec, tokenizer)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    save_processor(processor, out)
    (out / "tiny_vlm_spec.json").write_text(json.dumps(asdict(spec), indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m vlthinker.models.tiny --out DIR``: build the untrained tiny model."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = build_tiny_vlm(args.out, TinyVLMSpec(seed=args.seed))
    print(f"built the untrained tiny model in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
