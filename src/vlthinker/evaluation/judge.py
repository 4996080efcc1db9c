"""The judged protocols: an LLM judge reads the answer out of each response, as the official
evaluations of MathVista, MathVerse, MathVision and CharXiv do.

``vlthinker eval --judge URL --judge-model NAME`` sends one request per item of those
benchmarks to any OpenAI-compatible ``/chat/completions`` endpoint (plain HTTP through
``urllib``; no client library). The judge's part follows open-compass/VLMEvalKit, the authors'
harness:

- MathVista (``vlmeval/dataset/utils/mathvista.py``): the judge extracts the answer from the
  response after worked examples; the extraction is then scored by the official rule
  (``scoring.rule_mathvista``, lupantech/MathVista ``evaluation/calculate_score.py``);
- MathVerse (``vlmeval/dataset/utils/mathverse.py``): the judge extracts the answer, then a
  second request asks it whether the extraction matches the key (0 / 1);
- MathVision (``vlmeval/dataset/utils/mathv.py``): the judge extracts the answer, which is then
  checked by rule (option letter, or symbolic equivalence);
- CharXiv (princeton-nlp/CharXiv ``constants.py``, ``REASONING_GRADING_INST``): the judge
  grades the response against the key by the rubric of the question's source and answers JSON
  ``{"extracted_answer", "score"}``.

The prompts are written for this project after those files' structure (instruction, worked
examples, the question, the response); their wording is not the reference's, so a judged number
is comparable in protocol, not byte for byte. Judgements are cached in ``OUT/judged.jsonl``
(keyed by benchmark, item and a hash of the response), so a rerun asks only for new items. The
judge-free number stays the default and keeps its † mark; judged numbers are added beside it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlthinker import rewards
from vlthinker.evaluation import scoring
from vlthinker.outputs import JUDGED_FILE

log = logging.getLogger(__name__)

JUDGED_BENCHMARKS = ("mathvista", "mathverse", "mathvision", "charxiv")
MAX_RESPONSE_CHARS = 8000  # the tail of a long response that the judge sees

# url, body, headers, timeout -> response body (a test passes a fake one)
Transport = Callable[[str, bytes, Mapping[str, str], float], bytes]


class JudgeError(RuntimeError):
    """The judge endpoint failed or answered something that is not a chat completion."""


def urllib_transport(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> bytes:
    """POST ``body`` to ``url`` with the standard library; HTTP errors raise ``JudgeError``."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.read()
    except urllib.error.HTTPError as error:
        detail = error.read()[:300].decode("utf-8", "replace")
        raise JudgeError(f"judge endpoint {url}: HTTP {error.code}: {detail}") from error
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise JudgeError(f"judge endpoint {url}: {error}") from error


@dataclass
class Judge:
    """A chat model behind an OpenAI-compatible endpoint (``base_url`` ends before
    ``/chat/completions``, e.g. ``http://localhost:8000/v1``)."""

    base_url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 120.0
    max_tokens: int = 256
    retries: int = 3
    transport: Transport = urllib_transport

    def complete(self, prompt: str, temperature: float = 0.0) -> str:
        """The judge's reply to one user message; retried ``retries`` times, then JudgeError."""
        url = self.base_url.rstrip("/")
        if not url.endswith("/chat/completions"):
            url += "/chat/completions"
        body = json.dumps(
            {
                "model": self.model,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": temperature,
                "max_tokens": self.max_tokens,
            }
        ).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        error: Exception | None = None
        for attempt in range(max(1, self.retries)):
            try:
                reply = json.loads(self.transport(url, body, headers, self.timeout_s))
                content = reply["choices"][0]["message"]["content"]
                return str(content or "").strip()
            except (JudgeError, ValueError, KeyError, IndexError, TypeError) as caught:
                error = caught
                time.sleep(min(2.0**attempt, 10.0) if self.transport is urllib_transport else 0)
        raise JudgeError(f"the judge gave no usable reply after {self.retries} tries: {error}")


def judge_from_args(url: str, model: str, key_env: str = "OPENAI_API_KEY") -> Judge:
    """The judge named on the command line; the API key is read from ``key_env`` (may be unset
    for a local server)."""
    return Judge(base_url=url, model=model, api_key=os.environ.get(key_env) or None)


# ---------------------------------------------------------------- prompts


def _tail(response: str) -> str:
    return response[-MAX_RESPONSE_CHARS:]


_EXTRACT_EXAMPLES = """\
Example 1
Question: How many red cubes are left? Answer with an integer.
Model response: After removing the two spheres, three red cubes remain.
Extracted answer: 3

Example 2
Question: What is the ratio of the two bars? Answer with a number with two decimal places.
Model response: The left bar is 12 and the right one 16, so the ratio is 0.75.
Extracted answer: 0.75

Example 3
Question: In which two years was the value highest? Answer with a Python list.
Model response: The peak spans 2010 and 2011.
Extracted answer: [2010, 2011]

Example 4
Question: Which shape is shaded? Choices: (A) circle (B) square (C) triangle (D) star
Model response: The shaded one has three sides, so it is (C) triangle.
Extracted answer: C
"""


def mathvista_prompt(record: Any, response: str) -> str:
    """MathVista extraction: instruction, worked examples, the question, the response."""
    return (
        "Read the examples, then extract the final answer from the model response at the end "
        "and write only that answer after 'Extracted answer:'.\n\n"
        f"{_EXTRACT_EXAMPLES}\n"
        f"Question: {_question_with_options(record)}\n"
        f"Model response: {_tail(response)}\n"
        "Extracted answer:"
    )


def mathverse_extract_prompt(record: Any, response: str) -> str:
    """MathVerse step 1: extract the final answer (an option letter, a value or an expression)."""
    return (
        "Extract the final answer from the model response below. If the question has options, "
        "give the option letter; otherwise give the value or expression only, without units or "
        "explanation. If there is no answer, write nothing.\n\n"
        "Example: response 'The area is therefore 12 cm^2.' -> 12\n"
        "Example: response 'So the slope is -\\frac{1}{2}.' -> -\\frac{1}{2}\n"
        "Example: response 'Comparing the graphs, the answer is option B.' -> B\n\n"
        f"Question: {_question_with_options(record)}\n"
        f"Model response: {_tail(response)}\n"
        "Extracted answer:"
    )


def mathverse_score_prompt(record: Any, extracted: str) -> str:
    """MathVerse step 2: does the extracted answer mean the same as the key? 0 or 1."""
    return (
        "Decide whether the extracted answer is equivalent to the standard answer for the "
        "question. Different forms of the same value (0.5 and 1/2, 2\\sqrt{3} and \\sqrt{12}) or "
        "an option letter naming the correct option are equivalent. Reply with 1 if equivalent "
        "and 0 otherwise, and nothing else.\n\n"
        f"Question: {_question_with_options(record)}\n"
        f"Standard answer: {record.answer}\n"
        f"Extracted answer: {extracted}\n"
        "Judgement:"
    )


def mathvision_prompt(record: Any, response: str) -> str:
    """MathVision extraction: an option letter for multiple choice, else the value."""
    kind = "the option letter (A-E)" if record.options else "the final value or expression"
    return (
        f"Extract {kind} that the model response gives as its final answer. Write only the "
        "answer after 'Extracted answer:'; write nothing if the response gives none.\n\n"
        "Example: response 'Hence the total is 14.' -> 14\n"
        "Example: response 'The pattern repeats, so the answer is (D).' -> D\n\n"
        f"Question: {_question_with_options(record)}\n"
        f"Model response: {_tail(response)}\n"
        "Extracted answer:"
    )


_CHARXIV_RULES = {
    1: "Score 1 only if the final answer names the same term(s) as the ground truth: different "
    "notation of the same term is fine (alpha and α), and so is a different order when several "
    "terms are asked for; any different term scores 0.",
    2: "If the question lists options, score 1 only if the final answer is exactly the correct "
    "option. Otherwise score 1 if the final answer means the same as the ground truth "
    "('rises then falls' and 'increasing then decreasing') and 0 if it means something else.",
    3: "Score 1 only if the two numbers have exactly the same value; notation may differ (0.01 "
    "and 10^-2, 1500 and 1.5e3). 0.012 for a ground truth of 0.01 scores 0.",
    4: "Score 1 only if the two numbers have exactly the same value; notation may differ (0.01 "
    "and 10^-2, 1500 and 1.5e3). 0.012 for a ground truth of 0.01 scores 0.",
}


def charxiv_prompt(record: Any, response: str, source: int) -> str:
    """CharXiv grading: the rubric of the question's source; JSON with the extraction and score."""
    rule = _CHARXIV_RULES.get(source, _CHARXIV_RULES[2])
    return (
        "You are given a question about a chart, its ground-truth answer and a model response. "
        "Extract the final answer from the response, compare it with the ground truth and give "
        "a binary score. Do not explain. If the response is empty, leave the extraction empty "
        "and score 0.\n"
        f"Rule: {rule}\n"
        'Reply with JSON only: {"extracted_answer": "...", "score": 0 or 1}\n\n'
        f"Question: {record.question}\n"
        f"Ground truth: {record.answer}\n"
        f"Response: {_tail(response)}\n"
    )


def _question_with_options(record: Any) -> str:
    options = list(record.options or [])
    return record.question + ("\nChoices: " + " ".join(options) if options else "")


# ---------------------------------------------------------------- judging one item


def _first_line(text: str) -> str:
    text = text.strip()
    if text.lower().startswith("extracted answer:"):
        text = text.split(":", 1)[1]
    return text.strip().splitlines()[0].strip() if text.strip() else ""


def _binary(text: str) -> float:
    match = re.search(r"[01]", text)
    return float(match is not None and match.group(0) == "1")


def _charxiv_reply(text: str) -> tuple[str, float]:
    match = re.search(r"\{.*\}", text, re.S)
    if match:
        try:
            data = json.loads(match.group(0))
        except ValueError:
            data = None
        if isinstance(data, dict):
            score = data.get("score", 0)
            extracted = data.get("extracted_answer", data.get("extract_answer", ""))
            try:
                return str(extracted), float(float(score) >= 1)
            except (TypeError, ValueError):
                return str(extracted), 0.0
    found = re.search(r'"score"\s*:\s*"?([01])', text)
    return "", float(found is not None and found.group(1) == "1")


def judge_item(judge: Judge, benchmark: str, record: Any, response: str) -> dict[str, Any]:
    """``{"extracted", "score"}`` for one response by the judged protocol of ``benchmark``."""
    details = scoring.eval_meta(record)
    if benchmark == "mathvista":
        extracted = _first_line(judge.complete(mathvista_prompt(record, response)))
        if details.get("rule") == "mathvista":
            score = scoring.rule_mathvista(extracted, record, details)
        else:
            score = rewards.multiple_choice(extracted, record.answer, record.options)
        return {"extracted": extracted, "score": float(score)}
    if benchmark == "mathverse":
        extracted = _first_line(judge.complete(mathverse_extract_prompt(record, response)))
        if not extracted:
            return {"extracted": "", "score": 0.0}
        verdict = judge.complete(mathverse_score_prompt(record, extracted))
        return {"extracted": extracted, "score": _binary(verdict)}
    if benchmark == "mathvision":
        extracted = _first_line(judge.complete(mathvision_prompt(record, response)))
        if record.answer_type == "multiple_choice":
            score = rewards.multiple_choice(extracted, record.answer, record.options)
        else:
            score = rewards.math_equal(extracted, record.answer)
        return {"extracted": extracted, "score": float(score)}
    if benchmark == "charxiv":
        source = int(details.get("subset") or 2)
        extracted, score = _charxiv_reply(judge.complete(charxiv_prompt(record, response, source)))
        return {"extracted": extracted, "score": score}
    raise ValueError(f"{benchmark!r} has no judged protocol; judged: {JUDGED_BENCHMARKS}")


# ---------------------------------------------------------------- a whole run


def _response_key(response: str) -> str:
    return hashlib.sha1(response.encode("utf-8", "replace")).hexdigest()[:16]


def _read_cache(path: Path, model: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    cache: dict[tuple[str, str, str], dict[str, Any]] = {}
    if not path.exists():
        return cache
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a torn last line from an interrupted run
        if isinstance(row, dict) and row.get("judge_model") == model:
            cache[(str(row["benchmark"]), str(row["id"]), str(row["response_key"]))] = row
    return cache


def judge_rows(
    judge: Judge,
    rows: Iterable[Mapping[str, Any]],
    records: Mapping[tuple[str, str], Any],
    out_dir: Path,
) -> list[dict[str, Any]]:
    """Judge every prediction row of a judged benchmark whose record is known.

    ``rows`` are ``predictions.jsonl`` lines; ``records[(benchmark, id)]`` the matching records.
    Returns ``{"benchmark", "id", "score", "extracted", …}`` per judged row; new judgements are
    appended to ``out_dir/judged.jsonl`` as they come.
    """
    path = Path(out_dir) / JUDGED_FILE
    cache = _read_cache(path, judge.model)
    judged: list[dict[str, Any]] = []
    with path.open("a", encoding="utf-8") as handle:
        for row in rows:
            benchmark, item = str(row.get("benchmark")), str(row.get("id"))
            record = records.get((benchmark, item))
            if benchmark not in JUDGED_BENCHMARKS or record is None:
                continue
            response = str(row.get("response") or "")
            key = (benchmark, item, _response_key(response))
            if key not in cache:
                result = judge_item(judge, benchmark, record, response)
                cache[key] = {
                    "benchmark": benchmark,
                    "id": item,
                    "response_key": key[2],
                    "judge_model": judge.model,
                    **result,
                }
                handle.write(json.dumps(cache[key], ensure_ascii=False) + "\n")
                handle.flush()
            judged.append(cache[key])
    return judged


def judged_entries(judged: Sequence[Mapping[str, Any]], judge: Judge) -> dict[str, dict[str, Any]]:
    """Per benchmark: the judged number in percent, its item count and who judged it."""
    scores: dict[str, list[float]] = {}
    for row in judged:
        scores.setdefault(str(row["benchmark"]), []).append(float(row["score"]))
    return {
        name: {
            "score": 100.0 * sum(values) / len(values),
            "n": len(values),
            "model": judge.model,
            "endpoint": judge.base_url,
        }
        for name, values in scores.items()
        if values
    }


def judge_run(
    judge: Judge,
    specs: Sequence[Any],
    out_dir: str | Path,
    summary: dict[str, Any],
    *,
    limit: int | None = None,
) -> dict[str, Any]:
    """Judge the judged benchmarks of a finished ``run_eval`` and add the judged numbers to
    ``summary`` (``benchmarks[i]["judge"]``); rewrites ``results.json`` and ``results.md``."""
    from vlthinker.evaluation.folder import RESULTS_JSON, RESULTS_MD
    from vlthinker.evaluation.predictions import PREDICTIONS_FILE, read_predictions
    from vlthinker.evaluation.specs import load_items
    from vlthinker.evaluation.table import markdown

    out = Path(out_dir)
    chosen = [spec for spec in specs if spec.name in JUDGED_BENCHMARKS]
    records: dict[tuple[str, str], Any] = {}
    for spec in chosen:
        for item in load_items(spec, image_dir=out / "images", limit=limit):
            records[(item.benchmark, item.key)] = item.record
    latest = {(p.benchmark, p.id): p.to_json() for p in read_predictions(out / PREDICTIONS_FILE)}
    rows = [row for key, row in latest.items() if key in records]
    entries = judged_entries(judge_rows(judge, rows, records, out), judge)
    for benchmark in summary.get("benchmarks", []):
        if benchmark["name"] in entries:
            benchmark["judge"] = entries[benchmark["name"]]
    (out / RESULTS_JSON).write_text(json.dumps(summary, indent=2) + "\n")
    (out / RESULTS_MD).write_text(markdown(summary) + "\n")
    return summary


__all__ = [
    "JUDGED_BENCHMARKS",
    "Judge",
    "JudgeError",
    "judge_from_args",
    "judge_item",
    "judge_rows",
    "judge_run",
    "urllib_transport",
]
