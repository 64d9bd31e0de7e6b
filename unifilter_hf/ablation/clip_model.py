"""The ablation's downstream model: a small ``transformers.CLIPModel`` trained from scratch, contrastive loss.

The same recipe (config, steps, batch size, learning rate, seed) trains every set; only the data changes.

Example:
    >>> tok = shapes_world_tokenizer()
    >>> model = build_clip(len(tok), seed=0)
    >>> model.config.vision_config.num_hidden_layers, model.config.text_config.hidden_size
    (2, 64)
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from transformers import CLIPConfig, CLIPModel

from ..synthesis.shapes_world_tokenizer import shapes_world_tokenizer

__all__ = ["ClipRecipe", "Encoded", "build_clip", "embed", "embed_texts", "encode_pairs", "encode_texts", "train_clip"]

PAD, EOS = 1, 3  # the shapes-world tokenizer's <pad> and </s>


@dataclass(frozen=True)
class ClipRecipe:
    """The fixed training recipe: 2 layers x ``width`` per tower, ``steps`` of ``batch_size``, AdamW."""

    width: int = 64
    layers: int = 2
    image_size: int = 48  # the 96 px scenes are downscaled: colours, counts and sides stay visible
    patch_size: int = 8
    steps: int = 300
    batch_size: int = 64
    learning_rate: float = 1e-3
    max_words: int = 24


@dataclass
class Encoded:
    """Pairs as tensors: ``pixels`` (N, 3, S, S) in [-1, 1], ``input_ids`` and ``attention_mask`` (N, T)."""

    pixels: torch.Tensor
    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    def __len__(self) -> int:
        return len(self.pixels)

    def take(self, index: torch.Tensor) -> Encoded:
        return Encoded(self.pixels[index], self.input_ids[index], self.attention_mask[index])


def build_clip(vocab_size: int, recipe: ClipRecipe = ClipRecipe(), seed: int = 0) -> CLIPModel:
    """A fresh small CLIP whose initial weights depend only on ``seed``."""
    torch.manual_seed(seed)
    w = recipe.width
    tower = {"hidden_size": w, "intermediate_size": 2 * w, "num_hidden_layers": recipe.layers,
             "num_attention_heads": max(1, w // 32)}
    config = CLIPConfig(
        text_config={**tower, "vocab_size": vocab_size, "max_position_embeddings": recipe.max_words + 1,
                     "pad_token_id": PAD, "bos_token_id": 2, "eos_token_id": EOS},
        vision_config={**tower, "image_size": recipe.image_size, "patch_size": recipe.patch_size},
        projection_dim=w)
    return CLIPModel(config)


def encode_texts(texts: Sequence[str], recipe: ClipRecipe = ClipRecipe()) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask (N, T) of the captions (``</s>`` ends each: CLIP pools there)."""
    tok = shapes_world_tokenizer()
    ids = [tok(text)["input_ids"][: recipe.max_words] + [EOS] for text in texts]
    length = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), length), PAD, dtype=torch.long)
    mask = torch.zeros((len(ids), length), dtype=torch.long)
    for k, row in enumerate(ids):
        input_ids[k, : len(row)] = torch.tensor(row)
        mask[k, : len(row)] = 1
    return input_ids, mask


def encode_pairs(pngs: Sequence[bytes], texts: Sequence[str], recipe: ClipRecipe = ClipRecipe()) -> Encoded:
    """Decode and downscale the images, tokenize the captions (:func:`encode_texts`)."""
    size = recipe.image_size
    arrays = [np.asarray(Image.open(io.BytesIO(png)).convert("RGB").resize((size, size), Image.BILINEAR))
              for png in pngs]
    pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return Encoded(pixels, *encode_texts(texts, recipe))


def train_clip(data: Encoded, recipe: ClipRecipe = ClipRecipe(), seed: int = 0) -> CLIPModel:
    """Train a fresh CLIP on ``data`` with the contrastive loss; init and batch order depend only on ``seed``."""
    model = build_clip(len(shapes_world_tokenizer()), recipe, seed)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=0.01)
    generator = torch.Generator().manual_seed(seed)
    batch = min(recipe.batch_size, len(data))
    order = torch.randperm(len(data), generator=generator)
    cursor = 0
    for _ in range(recipe.steps):
        if cursor + batch > len(order):  # epochs without replacement, reshuffled each time
            order, cursor = torch.randperm(len(data), generator=generator), 0
        chunk = data.take(order[cursor: cursor + batch])
        cursor += batch
        out = model(input_ids=chunk.input_ids, attention_mask=chunk.attention_mask, pixel_values=chunk.pixels,
                    return_loss=True)
        optimizer.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    model.eval()
    return model


@torch.no_grad()
def embed_texts(model: CLIPModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                batch: int = 256) -> torch.Tensor:
    """L2-normalised text embeddings (N, D) of :func:`encode_texts` output."""
    texts = [_projected(model.get_text_features(input_ids=input_ids[start: start + batch],
                                                attention_mask=attention_mask[start: start + batch]))
             for start in range(0, len(input_ids), batch)]
    return torch.nn.functional.normalize(torch.cat(texts), dim=-1)


@torch.no_grad()
def embed(model: CLIPModel, data: Encoded, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised image and text embeddings, (N, D) each."""
    images = [_projected(model.get_image_features(pixel_values=data.pixels[start: start + batch]))
              for start in range(0, len(data), batch)]
    img = torch.nn.functional.normalize(torch.cat(images), dim=-1)
    return img, embed_texts(model, data.input_ids, data.attention_mask, batch)


def _projected(output) -> torch.Tensor:
    """transformers 5 returns the projected features as ``pooler_output`` of an output object; 4.x a tensor."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output
