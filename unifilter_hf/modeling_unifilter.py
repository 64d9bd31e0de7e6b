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
from .quality_losses import ce_loss, mse_loss


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


def _align_cpu_tensors(model: nn.Module, alignment: int = 64) -> None:
    """Copy CPU weights that sit at unaligned addresses (safetensors memory maps) into aligned memory.

    CPU matmul kernels pick their code path by alignment, so an unaligned weight gives results that differ in
    the last bits from the same weight in fresh memory; aligning makes a score independent of file layout.
    """
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.device.type == "cpu" and tensor.data_ptr() % alignment:
            tensor.data = tensor.data.clone()


class UniFilterPreTrainedModel(PreTrainedModel):
    config_class = UniFilterConfig
    config: UniFilterConfig
    # As in transformers' *ForSequenceClassification models: the decoder is the base model, `score` the head.
    base_model_prefix = "language_model"
    main_input_name = "input_ids"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["SiglipEncoderLayer"]
    # Native checkpoints saved before the head took transformers' `score` name still load.
    _legacy_key_mapping = {r"^score_head\.": "score."}

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        kwargs.setdefault("key_mapping", cls._legacy_key_mapping)
        loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        _align_cpu_tensors(loaded[0] if isinstance(loaded, tuple) else loaded)  # (model, info) on request
        return loaded

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
    state at the last real token goes through a bias-free linear head (`score`).

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
        """Projected image embeddings, shape `(images, num_image_tokens, llm_hidden)`.

        The features are the output of encoder layer `vision_feature_layer` (-1: the last one), taken before
        `post_layernorm` as in the official model. Only the layers up to that one run, and no other hidden
        state is kept.
        """
        tower = self.vision_tower
        pixel_values = pixel_values.to(tower.get_input_embeddings().weight.dtype)
        layers = getattr(getattr(tower, "encoder", None), "layers", None)
        if layers is None or not hasattr(tower, "embeddings"):  # a tower of another shape: ask for all states
            states = tower(pixel_values=pixel_values, output_hidden_states=True).hidden_states
            return self.projector(states[self.config.vision_feature_layer])
        # hidden_states[k] is the output after k encoder layers (k = 0: the patch embeddings).
        depth = self.config.vision_feature_layer % (len(layers) + 1)
        hidden = tower.embeddings(pixel_values)
        for layer in layers[:depth]:
            hidden = layer(hidden, None)
        return self.projector(hidden)

    def get_placeholder_mask(self, input_ids: torch.LongTensor) -> torch.BoolTensor:
        """True at the image-token positions that image features fill, shape `(batch, seq)`."""
        return input_ids == self.config.image_token_id

    def embed_text(self, input_ids: torch.LongTensor, image_mask: torch.BoolTensor) -> torch.Tensor:
        """Token embeddings; image positions read row 0, since the image token may lie past the matrix."""
        return self.get_input_embeddings()(input_ids.masked_fill(image_mask, 0))

    def scatter_image_features(
        self, inputs_embeds: torch.Tensor, image_mask: torch.BoolTensor, image_features: torch.Tensor
    ) -> torch.Tensor:
        """Write the image features into the placeholder positions, images in batch reading order."""
        image_features = image_features.to(inputs_embeds.dtype)
        mask = image_mask.unsqueeze(-1).expand_as(inputs_embeds)
        if mask.device.type == "cpu":  # a cheap check here; on accelerators it would stall the host
            if int(image_mask.sum()) != image_features.shape[0] * image_features.shape[1]:
                raise ValueError(
                    f"{int(image_mask.sum())} image-token positions but {image_features.shape[0]} images x "
                    f"{image_features.shape[1]} tokens; every image needs exactly num_image_tokens positions"
                )
        else:
            torch._assert_async(mask.sum() == image_features.numel(), "image tokens and image features differ")
        return inputs_embeds.masked_scatter(mask, image_features)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> QualityScoringOutput:
        """Score a padded batch.

        Args:
            input_ids: `(batch, seq)` ids with `num_image_tokens` image-token ids per image.
            attention_mask: 1 for real tokens; any padding side works (positions are derived from it).
            pixel_values: `(images, 3, H, W)`, all images of the batch in reading order.
            inputs_embeds: `(batch, seq, hidden)` instead of `input_ids`, image features already in place.
            labels: levels (float for 1 label, int class for several) to get a loss.
            kwargs: passed on to the language model (e.g. `output_attentions`, attention settings).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        # Checked before any image work is queued, so that on accelerators the host waits for nothing.
        decoder_mask = None if attention_mask is None or self._right_padded(attention_mask) else attention_mask
        if inputs_embeds is None:
            image_mask = self.get_placeholder_mask(input_ids)
            inputs_embeds = self.embed_text(input_ids, image_mask)
            if pixel_values is not None and pixel_values.shape[0]:  # a padded batch may carry zero images
                features = self.get_image_features(pixel_values)
                inputs_embeds = self.scatter_image_features(inputs_embeds, image_mask, features)
            elif image_mask.device.type == "cpu" and bool(image_mask.any()):  # no host sync on accelerators
                raise ValueError("input_ids contain image tokens but no pixel_values were given")
        batch, length = inputs_embeds.shape[:2]
        if attention_mask is None:
            attention_mask = torch.ones(batch, length, dtype=torch.long, device=inputs_embeds.device)
        # Positions count real tokens only, so a row's result does not depend on how it is padded. Right
        # padding continues counting (those positions are never read): repeated positions would read as
        # packed sequences to transformers' masking and bring back a full mask.
        if decoder_mask is None:
            position_ids = torch.arange(length, device=inputs_embeds.device).expand(batch, -1)
        else:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        hidden = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=decoder_mask,
            position_ids=position_ids,
            use_cache=False,
            **kwargs,
        ).last_hidden_state
        # Pool on the last real token (right or left padding alike).
        positions = torch.arange(length, device=hidden.device)
        last = (attention_mask.long() * positions).argmax(-1)
        pooled = hidden[torch.arange(batch, device=hidden.device), last]
        logits = self.score(pooled.to(self.score.weight.dtype))
        scores = self.logits_to_scores(logits)

        loss = None
        if labels is not None:
            loss = mse_loss(scores, labels) if self.config.num_labels == 1 else ce_loss(logits, labels)
        return QualityScoringOutput(loss=loss, logits=logits, scores=scores)

    @staticmethod
    def _right_padded(attention_mask: torch.Tensor) -> bool:
        """True when every row is its real tokens then padding: the plain causal mask then suffices.

        Under causal attention a real token sees only earlier positions, all real when the padding is on the
        right, so its result is the same without the padding mask; padded positions get values nobody reads
        (pooling takes the last real token). Without a mask, attention kernels skip the upper triangle (half
        the score matrix) and nothing of size `seq x seq` is built.
        """
        mask = attention_mask.bool()
        return bool((mask[:, 1:] <= mask[:, :-1]).all()) if mask.shape[-1] > 1 else True

    def logits_to_scores(self, logits: torch.Tensor) -> torch.Tensor:
        """The 0..3-scale score: the regression output, or the expected level of a classification head."""
        if self.config.num_labels == 1:
            return logits[:, 0]
        levels = torch.arange(self.config.num_labels, device=logits.device, dtype=torch.float32)
        return logits.float().softmax(-1) @ levels


__all__ = ["UniFilterForQualityScoring", "UniFilterPreTrainedModel", "UniFilterProjector", "QualityScoringOutput"]
