"""Configuration of the UniFilter quality scorer (SigLIP vision + pooled projector + decoder LLM + score head)."""

from __future__ import annotations

import math

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .levels import LEVEL_NAMES, NUM_LEVELS
from .levels import is_regression as _is_regression

# The pipeline task this model runs; a pipeline of another task that runs the model is refused (modeling).
PIPELINE_TASK = "multimodal-quality-scoring"

# The official vision tower, SigLIP so400m-patch14-384 (729 patches, pooled to 144 tokens by default).
SO400M_PATCH14_384 = {
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "patch_size": 14,
    "image_size": 384,
}


class UniFilterConfig(PreTrainedConfig):
    r"""Configuration for [`UniFilterForQualityScoring`].

    Args:
        vision_config: a SigLIP vision config (object or dict). Defaults to so400m-patch14-384 without the
            attention-pool head, which UniFilter never uses.
        text_config: any decoder config loadable by `AutoModel.from_config` (Qwen2, Qwen3, Llama, ...).
        num_image_tokens: tokens per image after adaptive average pooling of the patch grid; a square number.
        projector_hidden_act: activation between the two projector linears (exact GELU in the release).
        vision_feature_layer: index into the vision tower's `hidden_states`; -1 is the last encoder layer
            *before* `post_layernorm`, as in the official model.
        image_token_id: id written by the processor at image positions. Its embedding row is never read, so
            it may lie past the end of the embedding matrix.
        num_labels: 1 = regression on the 0..3 level scale (official release); 4 = per-level classification.

    Example:
        >>> from transformers import Qwen2Config, SiglipVisionConfig
        >>> cfg = UniFilterConfig(
        ...     vision_config=SiglipVisionConfig(hidden_size=32, image_size=84, patch_size=14),
        ...     text_config=Qwen2Config(hidden_size=32, num_hidden_layers=1), num_image_tokens=16, num_labels=4)
        >>> cfg.id2label[3]
        'positive'
    """

    model_type = "unifilter"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="siglip_vision_model",
            init_kwargs={**SO400M_PATCH14_384, "vision_use_head": False},  # UniFilter never uses the pool head
        ),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="qwen2"),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    num_image_tokens: int = 144
    projector_hidden_act: str = "gelu"
    vision_feature_layer: int = -1
    image_token_id: int = 151665
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        # A checkpoint saved with its pipeline code names it in `custom_pipelines`, and transformers then
        # insists on trust_remote_code even where that task is already registered by the installed package.
        # Where it is registered the entry is not needed, so it is dropped; as remote code it stays.
        if "custom_pipelines" in kwargs and _task_registered_locally(kwargs["custom_pipelines"]):
            kwargs.pop("custom_pipelines")
        # A bare config gets the regression head of the official release, not transformers' 2-label default.
        if self.id2label is None and kwargs.get("num_labels") is None:
            kwargs["num_labels"] = 1
        super().__post_init__(**kwargs)
        side = math.isqrt(self.num_image_tokens)
        if side * side != self.num_image_tokens:
            raise ValueError(f"num_image_tokens must be a square number, got {self.num_image_tokens}")
        # Readable labels that match the head size (pipelines look labels up by index).
        if self.num_labels == NUM_LEVELS:
            self.id2label = dict(enumerate(LEVEL_NAMES))
        elif _is_regression(self.num_labels):
            self.id2label = {0: "quality"}
        self.label2id = {v: k for k, v in self.id2label.items()}

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        # transformers only warns on a foreign model_type and then builds a model with random weights; a
        # checkpoint of another layout must go through the Auto classes, which route it to its own loader.
        model_type = config_dict.get("model_type")
        if model_type not in (None, cls.model_type):
            raise ValueError(
                f"this checkpoint's config has model_type {model_type!r}, not {cls.model_type!r}: load it with "
                "AutoModelForSequenceClassification.from_pretrained / AutoProcessor.from_pretrained (after "
                "`import unifilter_hf`), or unifilter_hf.official.load_official for official UniFilter checkpoints"
            )
        return super().from_dict(config_dict, **kwargs)

    @property
    def is_regression(self) -> bool:
        """True for the official single-output head that regresses the 0..3 level."""
        return _is_regression(self.num_labels)


def _task_registered_locally(custom_pipelines: dict) -> bool:
    from transformers.pipelines import PIPELINE_REGISTRY

    tasks = PIPELINE_REGISTRY.get_supported_tasks()
    return bool(custom_pipelines) and all(task in tasks for task in custom_pipelines)


__all__ = ["UniFilterConfig", "LEVEL_NAMES", "PIPELINE_TASK"]
