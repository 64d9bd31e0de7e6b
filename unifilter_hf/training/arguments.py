"""Training arguments as dataclasses, parsed from a YAML recipe plus ``--key value`` overrides by TRL's parser.

Three groups, as in TRL's scripts: :class:`DataArguments` (which data), :class:`UniFilterModelConfig` (TRL's
``ModelConfig`` for the checkpoint and LoRA settings, plus the architecture when a model is built from
backbone configs) and :class:`UniFilterTrainingArguments` (``transformers.TrainingArguments`` plus the loss).

Example:
    >>> data, model, train = parse_train_args(["--output_dir", "out/x", "--loss", "ce"])
    >>> train.loss, model.num_labels, train.remove_unused_columns
    ('ce', 4, False)
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from transformers import TrainingArguments
from trl import ModelConfig, TrlParser

from ..levels import NUM_LEVELS
from .losses import LOSSES

# The LLM's projection layers: LoRA goes on these, under `language_model` only (never SigLIP's q/k/v/out).
LLM_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class DataArguments:
    """Which four-level data to train on."""

    dataset: str = field(
        default="shapes_world",
        metadata={"help": "'shapes_world' (generated, learnable from scratch), or a source for "
                  "unifilter_hf.datasets_builder.build_synthetic: 'bundled', a synth folder, the released JSON."},
    )
    dataset_config: str = field(default="joint", metadata={"help": "builder config: caption, interleaved, joint"})
    image_folder: str | None = field(default=None, metadata={"help": "image root of the released JSON layout"})
    dataset_layout: str = field(
        default="builder",
        metadata={"help": "'builder' (records re-laid out by the synthetic builder) or 'official' (a released-layout "
                  "JSON/JSONL file fed verbatim, as the official training code does)"})
    validation_file: str | None = field(
        default=None, metadata={"help": "official layout: a separate validation file (default: carve "
                                "validation_fraction of the groups out of the training file)"})
    validation_fraction: float = field(default=0.2, metadata={"help": "builder: share of groups held out"})
    train_scenes: int = field(default=2000, metadata={"help": "shapes world: training scenes (4 rows each)"})
    validation_scenes: int = field(default=200, metadata={"help": "shapes world: held-out validation scenes"})
    image_size: int = field(default=96, metadata={"help": "shapes world: rendered image side in pixels"})
    blank_images: bool = field(default=False, metadata={"help": "shapes world: blank images (text-only control)"})
    document_share: float = field(default=0.0, metadata={"help": "shapes world: share of the scenes grouped into "
                                                          "2-3 scene documents (the rest stay captions)"})
    data_seed_offset: int = field(default=0, metadata={"help": "added to --seed for the data generator"})
    max_train_samples: int | None = field(default=None, metadata={"help": "truncate the training split"})
    max_eval_samples: int | None = field(default=None, metadata={"help": "truncate the validation split"})


@dataclass
class UniFilterModelConfig(ModelConfig):
    """TRL's ``ModelConfig`` (checkpoint, dtype, LoRA) plus the architecture of a model built from configs.

    With ``model_name_or_path`` a UniFilter checkpoint (native or official) is fine-tuned. Without it, the
    model is built from the sizes below; ``vision_weights`` / ``text_weights`` then name pretrained backbones
    (e.g. ``google/siglip-so400m-patch14-384``, ``Qwen/Qwen2.5-1.5B``) whose weights are loaded into it.
    """

    tokenizer_name_or_path: str = field(
        default="shapes_world", metadata={"help": "'shapes_world' (offline word-level tokenizer) or a Hub id/folder"}
    )
    vision_weights: str | None = field(default=None, metadata={"help": "pretrained SigLIP to load, or none"})
    text_weights: str | None = field(default=None, metadata={"help": "pretrained decoder to load, or none"})
    projector_weights: str | None = field(
        default=None, metadata={"help": "stage 2: a stage-1 output folder (or projector.safetensors) to start from"})
    vision_hidden_size: int = 64
    vision_intermediate_size: int = 128
    vision_num_layers: int = 2
    vision_num_heads: int = 4
    vision_patch_size: int = 8
    vision_image_size: int = 96
    text_model_type: str = "qwen2"
    text_hidden_size: int = 128
    text_intermediate_size: int = 256
    text_num_layers: int = 2
    text_num_heads: int = 4
    text_num_kv_heads: int = 2
    text_vocab_size: int | None = field(default=None, metadata={"help": "default: the tokenizer's size"})
    text_max_position_embeddings: int = 512
    text_rope_theta: float = 10000.0
    text_tie_word_embeddings: bool = False
    image_token_id: int | None = field(default=None, metadata={"help": "default: the processor's image token id"})
    num_image_tokens: int = field(default=16, metadata={"help": "tokens per image after pooling (a square)"})
    max_length: int = field(default=8192, metadata={"help": "longest spliced sequence (processor max_length)"})
    pad_to_square: bool = field(default=True, metadata={"help": "official training preprocessing (also applied "
                                                        "when fine-tuning a checkpoint: overrides its processor)"})
    truncation: str = field(
        default="whole_images",
        metadata={"help": "'whole_images' (drop whole image blocks, keep EOS) or 'official' (cut at max_length)"})
    official_bos: bool = field(
        default=True, metadata={"help": "a Hub tokenizer without BOS (Qwen) gets <s> as an added special token and "
                                "BOS, embeddings resized, as in the official training"})
    freeze_vision: bool = field(default=True, metadata={"help": "keep the vision tower frozen (official)"})
    num_labels: int = field(default=1, metadata={"help": "set from --loss: 4 for ce, else 1"})

    def __post_init__(self):
        # TRL's ModelConfig targets bare names, which also match SigLIP; ours are turned into an LLM-anchored regex.
        if self.lora_target_modules is None:
            self.lora_target_modules = list(LLM_PROJECTIONS)
        if self.lora_modules_to_save is None:
            self.lora_modules_to_save = ["projector", "score"]
        super().__post_init__()


@dataclass
class UniFilterTrainingArguments(TrainingArguments):
    """``TrainingArguments`` with the UniFilter loss, calibration and push settings.

    ``remove_unused_columns`` defaults to False: the raw image/text columns are what the collator needs.
    """

    stage: int = field(default=2, metadata={"help": "1: projector alignment (caption LM loss, projector only); "
                                            "2: quality scoring (the loss below)"})
    loss: str = field(default="mse", metadata={"help": f"one of {LOSSES}; mse = official recipe"})
    pairwise_weight: float = field(default=0.0, metadata={"help": "weight of a Bradley-Terry term added to mse/ce"})
    group_batches: bool | None = field(
        default=None, metadata={"help": "keep a group's versions in one batch (default: on with a pairwise term)"}
    )
    global_batch_size: int | None = field(
        default=None, metadata={"help": "the recipe's global batch; at launch processes x per-device batch x "
                                "accumulation must equal it (an error otherwise)"})
    torch_num_threads: int | None = field(
        default=None, metadata={"help": "intra-op threads for the training process (default: torch's choice)"})
    calibrate: bool = field(default=True, metadata={"help": "fit level calibration on validation scores"})
    push_repo: str | None = field(default=None, metadata={"help": "Hub repo for checkpoint+processor+card "
                                                          "(`--push_to_hub REPO` on the command line)"})
    remove_unused_columns: bool = field(default=False, metadata={"help": "keep raw columns for the collator"})
    label_names: list[str] | None = field(default_factory=lambda: ["labels"], metadata={"help": "label keys"})

    def __post_init__(self):
        if self.stage not in (1, 2):
            raise ValueError(f"--stage must be 1 or 2, got {self.stage}")
        if self.loss not in LOSSES:
            raise ValueError(f"--loss must be one of {LOSSES}, got {self.loss!r}")
        if self.group_batches is None:
            self.group_batches = self.loss == "pairwise" or self.pairwise_weight > 0
        super().__post_init__()


# The environment variables a recipe's ``env:`` may set (docs/security.md): threads, devices, logging only.
RECIPE_ENV_KEYS = frozenset({
    "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "TOKENIZERS_PARALLELISM", "WANDB_MODE", "WANDB_PROJECT",
})


def _check_recipe_env(args: Sequence[str]) -> None:
    """Refuse a recipe whose ``env:`` names a variable outside :data:`RECIPE_ENV_KEYS` (before TRL sets any)."""
    if "--config" not in args or args.index("--config") + 1 >= len(args):
        return
    import yaml

    try:
        with open(args[args.index("--config") + 1]) as fh:
            recipe = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError):
        return  # TRL's own reading reports it
    env = recipe.get("env") if isinstance(recipe, dict) else None
    if env is None:
        return
    refused = sorted(str(key) for key in env) if isinstance(env, dict) else ["(not a mapping)"]
    refused = [key for key in refused if key not in RECIPE_ENV_KEYS]
    if refused:
        raise ValueError(
            f"recipe env: {', '.join(refused)} may not be set by a recipe; allowed: "
            f"{', '.join(sorted(RECIPE_ENV_KEYS))} (set other variables in your shell)"
        )


def _rewrite_push(argv: Sequence[str]) -> list[str]:
    """``--push_to_hub REPO`` -> ``--push_repo REPO`` (the Trainer's own ``push_to_hub`` is a bool)."""
    out, args = [], list(argv)
    for k, arg in enumerate(args):
        if arg == "--push_to_hub" and k + 1 < len(args) and not args[k + 1].startswith("--"):
            out.append("--push_repo")
        else:
            out.append(arg)
    return out


def parse_train_args(
    argv: Sequence[str] | None = None,
) -> tuple[DataArguments, UniFilterModelConfig, UniFilterTrainingArguments]:
    """Parse ``[--config recipe.yaml] [--key value ...]``; command-line values override the recipe.

    ``num_labels`` follows the loss (4 for ``ce``). The YAML may hold an ``env`` mapping (TRL convention) with
    only the keys in :data:`RECIPE_ENV_KEYS`: a recipe is often someone else's file, and ``LD_PRELOAD``,
    ``PYTHONPATH``, ``HF_ENDPOINT`` or a proxy variable would hand them the training process.
    """
    args = _rewrite_push(sys.argv[1:] if argv is None else argv)
    _check_recipe_env(args)
    parser = TrlParser((DataArguments, UniFilterModelConfig, UniFilterTrainingArguments))
    data, model, train = parser.parse_args_and_config(args)
    model.num_labels = NUM_LEVELS if train.loss == "ce" else 1
    return data, model, train
