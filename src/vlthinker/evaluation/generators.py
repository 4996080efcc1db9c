"""Generation back-ends: each turns a batch of records into one response per record.

``hf_generator`` runs Hugging Face ``generate`` on an in-memory model (``evaluation.generation``);
``vllm_generator`` runs vLLM offline on a GPU; ``load_generator`` loads a checkpoint for the
back-end a run asks for (``auto``: vLLM where installed with a GPU, else Hugging Face).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# A generator turns a batch of records into one response each (the model behind it is its own).
Generator = Callable[[Sequence[Any]], list[str]]

#: The ``--backend`` choices.
BACKENDS = ("auto", "hf", "vllm")


def hf_generator(
    model: Any,
    processor: Any,
    prompt_config: Any,
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
) -> Generator:
    """Batched Hugging Face generation through ``evaluation.generation.generate``."""
    from vlthinker.data import build_messages
    from vlthinker.evaluation.generation import generate

    def run(records: Sequence[Any]) -> list[str]:
        messages = [build_messages(record, prompt_config) for record in records]
        images = [record.load_images() for record in records]
        return list(
            generate(
                model,
                processor,
                messages,
                images,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                do_sample=temperature > 0,
            )
        )

    return run


def vllm_available() -> bool:
    """vLLM is used only where it is installed and a GPU is present."""
    try:
        import torch
        import vllm  # noqa: F401
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def vllm_missing() -> str:
    """What this machine lacks for the vLLM backend, in words."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        return "vLLM, which is not installed (pip install 'vlthinker[gpu]')"
    return "a CUDA GPU, and none is visible here"


def vllm_generator(
    model_path: str | Path,
    processor: Any,
    prompt_config: Any,
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
) -> Generator:  # pragma: no cover - needs a GPU and vLLM
    """vLLM offline generation with the processor's chat template (GPU machines only)."""
    from vllm import LLM, SamplingParams

    from vlthinker.data import build_messages

    llm = LLM(model=str(model_path), limit_mm_per_prompt={"image": 8})
    params = SamplingParams(max_tokens=max_new_tokens, temperature=temperature, top_p=top_p)

    def run(records: Sequence[Any]) -> list[str]:
        prompts = []
        for record in records:
            text = processor.apply_chat_template(
                build_messages(record, prompt_config), tokenize=False, add_generation_prompt=True
            )
            prompts.append({"prompt": text, "multi_modal_data": {"image": record.load_images()}})
        outputs = llm.generate(prompts, params, use_tqdm=False)
        return [output.outputs[0].text for output in outputs]

    return run


def load_generator(
    model_path: str | Path | None,
    prompt_config: Any,
    backend: str,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
) -> Generator:
    """The generator of ``backend`` for the model at ``model_path`` (loaded here)."""
    if model_path is None:
        raise ValueError("--model is required: some items have no prediction yet")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be {', '.join(BACKENDS)}, got {backend!r}")
    use_vllm = backend == "vllm" or (backend == "auto" and vllm_available())
    if backend == "vllm" and not vllm_available():
        raise ValueError(f"--backend vllm needs {vllm_missing()}; use --backend hf (or auto)")
    from vlthinker.models import load_policy

    try:
        from vlthinker.models import resolve_model_path

        model_path = resolve_model_path(str(model_path))
    except ImportError:
        pass
    sampling = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p}
    if use_vllm:  # pragma: no cover - GPU only
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(str(model_path))
        return vllm_generator(model_path, processor, prompt_config, **sampling)
    model, processor = load_policy(str(model_path))
    model.eval()
    return hf_generator(model, processor, prompt_config, **sampling)


__all__ = [
    "BACKENDS",
    "Generator",
    "hf_generator",
    "load_generator",
    "vllm_available",
    "vllm_generator",
    "vllm_missing",
]
