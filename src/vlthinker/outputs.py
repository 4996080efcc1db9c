"""The names of the files vlthinker writes: one list, at the bottom layer, that the run folder
(:mod:`vlthinker.train.run_folder`), the evaluation folder (:mod:`vlthinker.evaluation.folder`)
and the data reader (which never reads them as data: :data:`vlthinker.data.readers.OUTPUT_FILES`)
all take their names from. Imports nothing of vlthinker.
"""

from __future__ import annotations

# ------------------------------------------------------------------ a training run's folder
CONFIG_FILE = "config.yaml"  # the run's full config
METRICS_FILE = "metrics.jsonl"  # every metric of every step
BATCHES_FILE = "batches.jsonl"  # the record ids of each step's prompts, in order
VALIDATION_ITEMS_FILE = "validation_items.jsonl"  # per validation pass, every item's score
RESULTS_FILE = "results.md"  # the final table (an evaluation's too)
RESULTS_JSON = "results.json"  # the validation history (an evaluation's results too)
PLOTS_FILE = "plots.png"
TENSORBOARD_DIR = "tensorboard"
FINAL_DIR = "final"  # the trained model
CARD_FILE = "README.md"  # the run card
RESUME_CHANGES_FILE = "resume_changes.jsonl"  # settings a resume changed, with the step
TRAIN_LOCK = "train.lock"
#: What a training run writes into its folder (``checkpoint-N`` folders aside).
RUN_FILES = (
    CONFIG_FILE,
    METRICS_FILE,
    BATCHES_FILE,
    VALIDATION_ITEMS_FILE,
    RESULTS_FILE,
    RESULTS_JSON,
    PLOTS_FILE,
    TENSORBOARD_DIR,
    FINAL_DIR,
    RESUME_CHANGES_FILE,
)
#: The step logs, cut back to the checkpoint when a run resumes.
LOG_FILES = (METRICS_FILE, BATCHES_FILE, VALIDATION_ITEMS_FILE)

# ------------------------------------------------------------------ an evaluation's folder
PREDICTIONS_FILE = "predictions.jsonl"
EVAL_SETTINGS_FILE = "eval_settings.json"  # the model and generation settings of the predictions
JUDGED_FILE = "judged.jsonl"  # the judge model's cached verdicts
EVAL_LOCK = "eval.lock"
EVAL_FILES = (PREDICTIONS_FILE, EVAL_SETTINGS_FILE, JUDGED_FILE, RESULTS_FILE, RESULTS_JSON)

# ------------------------------------------------------------------ SFT and model folders
SFT_SUMMARY_FILE = "sft_summary.json"
#: JSON files of a saved model, processor or trainer checkpoint (written through transformers).
MODEL_FILES = (
    "trainer_state.json",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.json",
    "preprocessor_config.json",
    "processor_config.json",
    "video_preprocessor_config.json",
    "adapter_config.json",
    "model.safetensors.index.json",
    "tiny_vlm_spec.json",
)

#: Every data-like file (.json, .jsonl) vlthinker writes anywhere: never read as data.
OUTPUT_FILES = frozenset(
    {
        METRICS_FILE,
        BATCHES_FILE,
        VALIDATION_ITEMS_FILE,
        RESUME_CHANGES_FILE,
        RESULTS_JSON,
        PREDICTIONS_FILE,
        EVAL_SETTINGS_FILE,
        JUDGED_FILE,
        SFT_SUMMARY_FILE,
        *MODEL_FILES,
    }
)
