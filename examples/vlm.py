"""G²RPO in TRL's VLM GRPO script: the tiny Qwen3-VL shipped in vlthinker on two image tasks.

TRL's VLM example (a prompt with an image, an `image` column, TRL reward functions) with TRL's
GRPOConfig / GRPOTrainer swapped for vlthinker's and a `task` column added. `math` (the sum or
difference of the numbers drawn) is scored by exact match, `ocr` (the word drawn) with partial
credit. Run: python examples/vlm.py [output_dir]
"""

import difflib
import io
import re
import sys

from datasets import Dataset
from PIL import Image

from vlthinker import G2RPOConfig, G2RPOTrainer
from vlthinker.data.synthetic import generate
from vlthinker.models import load_policy

model, processor = load_policy("embedded:tiny_vlm")  # shipped with vlthinker: no download

# A stand-in for TRL's load_dataset(...): drawn images with a question and a verifiable answer.
INSTRUCTION = "\nGive only the final answer inside <answer> </answer> tags."
rows = [
    {"task": r.task, "answer": r.answer, "image": Image.open(io.BytesIO(r.images[0])),
     "prompt": [{"role": "user", "content": [
         {"type": "image"}, {"type": "text", "text": r.question + INSTRUCTION}]}]}
    for r in generate(32, tasks=["math", "ocr"], seed=0)
]  # fmt: skip
dataset = Dataset.from_list(rows)


def answer_of(completion) -> str:
    found = re.search(r"<answer>(.*?)</answer>", completion[-1]["content"], re.DOTALL)
    return found.group(1).strip() if found else ""


def accuracy(completions, answer, task, **kwargs):
    """math: exact match of the answer; ocr: its similarity to the word (partial credit)."""
    similarity = difflib.SequenceMatcher
    return [
        float(answer_of(c) == a) if t == "math" else similarity(None, answer_of(c), a).ratio()
        for c, a, t in zip(completions, answer, task, strict=True)
    ]


def format_reward(completions, **kwargs):
    return [float(bool(re.search(r"<answer>.*?</answer>", c[-1]["content"]))) for c in completions]


args = G2RPOConfig(output_dir=sys.argv[1] if len(sys.argv) > 1 else "g2rpo-vlm",
                   online_filter=[0.01, 0.99], max_resample=2, reward_weights=[0.9, 0.1],
                   max_steps=2, per_device_train_batch_size=8, num_generations=4,
                   max_completion_length=24, logging_steps=1, save_strategy="no",
                   report_to="none", use_cpu=True, bf16=False)  # fmt: skip
trainer = G2RPOTrainer(model=model, processing_class=processor, args=args, train_dataset=dataset,
                       reward_funcs=[accuracy, format_reward])  # fmt: skip
trainer.train()
