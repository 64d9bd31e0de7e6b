"""UniFilter quality scorer: SigLIP -> adaptive average pool -> MLP projector -> decoder LLM -> score head."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.utils import ModelOutput

from .configuration_unifilter import UniFilterConfig


@dataclass
class QualityScoringOutput(ModelOutput):
    """Output of [`UniFilterForQualityScoring`].

    Attributes:
        loss: MSE on the level (1 label) or cross-entropy over levels (several labels), when labels are given.
        logits: raw head output, shape `(batch, num_labels)`.
        scores: the quality on the 0..3 scale, shape `(batch,)`: the regression value, or the expected level
            `sum_k p_k * k` for a classification head.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    scores: torch.FloatTensor | None = None


class UniFilterProjector(nn.Module):
    """Pools the square patch grid to `num_image_tokens` and maps it to the LLM width (Linear-act-Linear)."""

    def __init__(self, config: UniFilterConfig):
        super().__init__()
        side = math.isqrt(config.num_image_tokens)
        # Adaptive, not plain, pooling: 27 patches do not divide into 12, and the official windows overlap.
        self.pool = nn.AdaptiveAvgPool2d((side, side))
        self.linear_1 = nn.Linear(config.vision_config.hidden_size, config.text_config.hidden_size)
        self.act = ACT2FN[config.projector_hidden_act]
        self.linear_2 = nn.Linear(config.text_config.hidden_size, config.text_config.hidden_size)

    def forward(self, patch_features: torch.Tensor) -> torch.Tensor:
        images, patches, width = patch_features.shape
        grid = math.isqrt(patches)
        if grid * grid != patches:
            raise ValueError(f"vision features must form a square grid, got {patches} patches")
        x = patch_features.transpose(1, 2).reshape(images, width, grid, grid)
        x = self.pool(x).flatten(2).transpose(1, 2)  # (images, tokens, width), row-major
        return self.linear_2(self.act(self.linear_1(x)))


class UniFilterPreTrainedModel(PreTrainedModel):
    config_class = UniFilterConfig
    config: UniFilterConfig
    base_model_prefix = "unifilter"
    main_input_name = "input_ids"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["SiglipEncoderLayer"]

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        # Official LLaVA-layout checkpoints are converted in memory. The absolute import inside `try` keeps this
        # file loadable as remote code where unifilter_hf is not installed (a relative one would be copied along).
        try:
            from unifilter_hf.official_loading import is_official_checkpoint, load_official_model
        except ImportError:
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        if is_official_checkpoint(pretrained_model_name_or_path, **kwargs):
            return load_official_model(pretrained_model_name_or_path, *args, **kwargs)
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    def save_pretrained(self, save_directory, *args, **kwargs):
        # A class records only one Auto class for remote code; map the classifier Auto class as well.
        module = type(self).__module__.rsplit(".", 1)[-1]
        auto_map = dict(getattr(self.config, "auto_map", None) or {})
        auto_map.setdefault("AutoModelForSequenceClassification", f"{module}.{type(self).__name__}")
        self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)


class UniFilterForQualityScoring(UniFilterPreTrainedModel):
    """Scores a caption or an interleaved document on the 0..3 quality scale.

    Image features replace the image-token positions of the embedded sequence; the decoder's final hidden
    state at the last real token goes through a bias-free linear head.

    Example:
        >>> import torch
        >>> from transformers import Qwen2Config, SiglipVisionConfig
        >>> cfg = UniFilterConfig(
        ...     vision_config=SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        ...                                      num_attention_heads=2, image_size=28, patch_size=14),
        ...     text_config=Qwen2Config(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        ...                             num_attention_heads=2, num_key_value_heads=1, vocab_size=50),
        ...     num_image_tokens=4, image_token_id=50)
        >>> model = UniFilterForQualityScoring(cfg).eval()
        >>> ids = torch.tensor([[1] + [50] * 4 + [2, 3]])
        >>> model(input_ids=ids, pixel_values=torch.zeros(1, 3, 28, 28)).scores.shape
        torch.Size([1])
    """

    def __init__(self, config: UniFilterConfig):
        super().__init__(config)
        self.vision_tower = AutoModel.from_config(config.vision_config)
        self.projector = UniFilterProjector(config)
        self.language_model = AutoModel.from_config(config.text_config)
        self.score = nn.Linear(config.text_config.hidden_size, config.num_labels, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Projected image embeddings, shape `(images, num_image_tokens, llm_hidden)`."""
        vision_dtype = self.vision_tower.get_input_embeddings().weight.dtype
        out = self.vision_tower(pixel_values=pixel_values.to(vision_dtype), output_hidden_states=True)
        # hidden_states[-1] is the last encoder layer before post_layernorm (SPEC section 2.1).
        return self.projector(out.hidden_states[self.config.vision_feature_layer])

    def embed_inputs(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None) -> torch.Tensor:
        """Text embeddings with image features written at the image-token positions, in batch order."""
        is_image = input_ids == self.config.image_token_id
        # The image token's own row is never used; id 0 keeps the lookup inside the embedding matrix.
        embeds = self.get_input_embeddings()(input_ids.masked_fill(is_image, 0))
        expected = int(is_image.sum())
        if expected == 0:
            return embeds
        if pixel_values is None:
            raise ValueError("input_ids contain image tokens but no pixel_values were given")
        features = self.get_image_features(pixel_values).to(embeds.dtype)
        if features.shape[0] * features.shape[1] != expected:
            raise ValueError(
                f"{expected} image-token positions but {features.shape[0]} images x "
                f"{features.shape[1]} tokens; every image needs exactly num_image_tokens positions"
            )
        return embeds.masked_scatter(is_image.unsqueeze(-1), features)

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> QualityScoringOutput:
        """Score a padded batch.

        Args:
            input_ids: `(batch, seq)` ids with `num_image_tokens` image-token ids per image.
            attention_mask: 1 for real tokens; any padding side works (positions are derived from it).
            pixel_values: `(images, 3, H, W)`, all images of the batch in reading order.
            labels: levels (float for 1 label, int class for several) to get a loss.
            kwargs: processor extras such as `num_images` are accepted and ignored.
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        inputs_embeds = self.embed_inputs(input_ids, pixel_values)
        # Positions count real tokens only, so a row's result does not depend on how it is padded.
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        hidden = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=False,
        ).last_hidden_state
        # Pool on the last real token (right or left padding alike).
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        last = (attention_mask.long() * positions).argmax(-1)
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        logits = self.score(pooled.to(self.score.weight.dtype))
        scores = self.logits_to_scores(logits)

        loss = None
        if labels is not None:
            if self.config.num_labels == 1:
                loss = nn.functional.mse_loss(scores.float(), labels.float().view(-1))
            else:
                loss = nn.functional.cross_entropy(logits.float(), labels.long().view(-1))
        return QualityScoringOutput(loss=loss, logits=logits, scores=scores)

    def logits_to_scores(self, logits: torch.Tensor) -> torch.Tensor:
        """The 0..3-scale score: the regression output, or the expected level of a classification head."""
        if self.config.num_labels == 1:
            return logits[:, 0]
        levels = torch.arange(self.config.num_labels, device=logits.device, dtype=torch.float32)
        return logits.float().softmax(-1) @ levels


__all__ = ["UniFilterForQualityScoring", "UniFilterPreTrainedModel", "UniFilterProjector", "QualityScoringOutput"]
