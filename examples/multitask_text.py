"""G²RPO in a TRL script: a small text model trained on two verifiable tasks.

TRL's GRPOConfig / GRPOTrainer become vlthinker's and the dataset gains a `task` column. Exact
match scores `arithmetic`, partial credit `repeat`: each task's advantages are normalised on their
own, metrics are logged per task, and the online filter drops groups whose accuracy is all tied.
Run: python examples/multitask_text.py [output_dir]
"""

import difflib
import random
import re
import sys

from datasets import Dataset
from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

from vlthinker import G2RPOConfig, G2RPOTrainer
from vlthinker.models import resolve_model_path

# A tiny randomly initialised Qwen3 with the tokenizer shipped in vlthinker: nothing to download.
tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("embedded:tiny_vlm"))
model = Qwen3ForCausalLM(Qwen3Config(
    vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, head_dim=32,
    num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
    pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id))  # fmt: skip

rng, words, rows = random.Random(0), ["apple", "river", "stone", "cloud", "green"], []
for _ in range(16):
    a, b, phrase = rng.randint(1, 9), rng.randint(1, 9), " ".join(rng.choices(words, k=2))
    rows.append({"task": "arithmetic", "answer": str(a + b),
                 "prompt": [{"role": "user", "content": f"{a} + {b} = ?"}]})  # fmt: skip
    rows.append({"task": "repeat", "answer": phrase,
                 "prompt": [{"role": "user", "content": f"Repeat: {phrase}"}]})  # fmt: skip
dataset = Dataset.from_list(rows)


def accuracy(completions, answer, task, **kwargs):
    """arithmetic: 1 if the last number is the answer; repeat: similarity to the phrase."""
    scores = []
    for completion, target, kind in zip(completions, answer, task, strict=True):
        text = completion[-1]["content"].strip()
        if kind == "arithmetic":
            scores.append(float(re.findall(r"-?\d+", text)[-1:] == [target]))
        else:
            scores.append(difflib.SequenceMatcher(None, text, target).ratio())
    return scores


def brevity(completions, **kwargs):
    return [max(0.0, 1.0 - len(completion[-1]["content"]) / 100) for completion in completions]


args = G2RPOConfig(output_dir=sys.argv[1] if len(sys.argv) > 1 else "g2rpo-text",
                   online_filter=[0.01, 0.99], max_resample=2, reward_weights=[0.9, 0.1],
                   max_steps=2, per_device_train_batch_size=8, num_generations=4,
                   max_completion_length=16, logging_steps=1, save_strategy="no",
                   report_to="none", use_cpu=True, bf16=False)  # fmt: skip
trainer = G2RPOTrainer(model=model, processing_class=tokenizer, reward_funcs=[accuracy, brevity],
                       args=args, train_dataset=dataset)  # fmt: skip
trainer.train()
