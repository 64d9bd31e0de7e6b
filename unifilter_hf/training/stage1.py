"""Stage 1 of the paper's recipe: align the projector to the LLM with a next-token loss on captions.

As LLaVA's pretraining stage (which the official recipe runs first): each image-caption pair becomes
``<image>`` + caption + ``"\\n"`` (no BOS, no EOS: LLaVA's "plain" template), the loss is the base LLM's
next-token cross-entropy on the caption tokens (image positions are not targets), computed with the base LLM's
own LM head, and only the projector is trained. The run saves ``projector.safetensors``, which stage 2 loads
with ``projector_weights``.

Example:
    >>> summary = train(["--config", "recipes/unifilter-qwen2.5-1.5b/stage1.yaml"])  # doctest: +SKIP
    >>> summary["eval_loss_after"] < summary["eval_loss_before"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import datasets
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import Trainer

from ..sample import Sample
from .arguments import DataArguments, UniFilterModelConfig, UniFilterTrainingArguments
from .collator import QualityCollator

PROJECTOR_FILE = "projector.safetensors"


class CaptionLMModel(nn.Module):
    """A UniFilter model's vision tower, projector and LLM with the base LLM's LM head: a captioning LM.

    ``labels`` are already the next-token targets of each position (-100 where none); the loss is their
    cross-entropy summed and divided by ``num_items_in_batch`` (all targets of the optimizer step, from the
    Trainer) or by this batch's targets, so gradient accumulation changes nothing.
    """

    accepts_loss_kwargs = True  # the Trainer passes num_items_in_batch and does not divide again

    def __init__(self, scorer, lm_head: nn.Module):
        super().__init__()
        self.scorer, self.lm_head = scorer, lm_head
        self.config = scorer.config

    @property
    def projector(self) -> nn.Module:
        return self.scorer.projector

    def forward(self, input_ids, attention_mask=None, pixel_values=None, labels=None, num_items_in_batch=None):
        scorer = self.scorer
        mask = scorer.get_placeholder_mask(input_ids)
        embeds = scorer.embed_text(input_ids, mask)
        embeds = scorer.scatter_image_features(embeds, mask, scorer.get_image_features(pixel_values))
        hidden = scorer.language_model(inputs_embeds=embeds, attention_mask=attention_mask,
                                       use_cache=False).last_hidden_state
        logits = self.lm_head(hidden).float()
        loss = None
        if labels is not None:
            total = nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten().to(logits.device),
                                                ignore_index=-100, reduction="sum")
            count = num_items_in_batch if num_items_in_batch is not None else (labels != -100).sum()
            loss = total / (count.to(total.device) if torch.is_tensor(count) else count)
        return {"loss": loss, "logits": logits}


class CaptionLMCollator(QualityCollator):
    """Caption rows -> ``<image>`` + caption + newline, no BOS/EOS, and next-token ``labels`` on the caption."""

    def __init__(self, processor):
        plain = copy.copy(processor)  # the scorer's processor keeps its BOS/EOS rule
        plain.add_bos_token = plain.add_eos_token = False
        super().__init__(plain)

    def __call__(self, rows):
        samples = []
        for row in rows:
            sample = self.to_sample(row)
            caption = row["text"] if isinstance(row.get("text"), str) else (sample.texts[0] or "")
            caption = caption.replace(self.processor.image_token, "")  # an official-layout record's placeholder
            sample = Sample.caption(sample.image_list[0], caption)
            sample.meta["prompt"] = self.processor.image_token + caption.strip() + "\n"
            samples.append(sample)
        batch = self.processor(samples)
        ids, attention = batch["input_ids"], batch["attention_mask"]
        targets = ids.masked_fill((attention == 0) | (ids == self.processor.image_token_id), -100)
        labels = torch.full_like(ids, -100)
        labels[:, :-1] = targets[:, 1:]  # position t predicts token t + 1
        batch["labels"] = labels
        return batch


def caption_rows(dd: datasets.DatasetDict) -> datasets.DatasetDict:
    """The positive (level 3) captions of each split: the image-caption pairs of stage 1."""
    return datasets.DatasetDict({k: v.filter(lambda r: r["kind"] == "caption" and r["label"] == 3)
                                 for k, v in dd.items()})


def base_lm_head(scorer, model_args: UniFilterModelConfig) -> nn.Module:
    """The base LLM's LM head, frozen: tied to the input embeddings, loaded from ``text_weights``, or new."""
    embeddings = scorer.get_input_embeddings()
    head = nn.Linear(embeddings.weight.shape[1], embeddings.weight.shape[0], bias=False)
    if model_args.text_tie_word_embeddings:
        head.weight = embeddings.weight
    elif model_args.text_weights:
        from transformers import AutoModelForCausalLM

        lm = AutoModelForCausalLM.from_pretrained(model_args.text_weights)
        head.weight = nn.Parameter(lm.get_output_embeddings().weight[: head.weight.shape[0]].detach().clone())
    return head.requires_grad_(False)


def load_projector(scorer, path: str | Path) -> None:
    """Load a stage-1 projector (a folder holding ``projector.safetensors``, or the file) into ``scorer``."""
    path = Path(path)
    scorer.projector.load_state_dict(load_file(path / PROJECTOR_FILE if path.is_dir() else path))


def run_stage1(data_args: DataArguments, model_args: UniFilterModelConfig, train_args: UniFilterTrainingArguments,
               dd: datasets.DatasetDict, processor, scorer) -> dict[str, Any]:
    """Train the projector only with the caption LM loss; save it; return the losses before and after."""
    scorer.requires_grad_(False)
    scorer.projector.requires_grad_(True)
    model = CaptionLMModel(scorer, base_lm_head(scorer, model_args))
    captions = caption_rows(dd)
    trainer = Trainer(model=model, args=train_args, train_dataset=captions["train"],
                      eval_dataset=captions["validation"], data_collator=CaptionLMCollator(processor))
    before = trainer.evaluate()["eval_loss"]
    started = time.perf_counter()
    result = trainer.train()
    after = trainer.evaluate()["eval_loss"]
    summary = {"stage": 1, "metrics": {"eval_loss_before": before, "eval_loss_after": after},
               "eval_loss_before": before, "eval_loss_after": after,
               "train_loss": result.training_loss, "steps": trainer.state.global_step,
               "train_rows": captions["train"].num_rows, "train_seconds": round(time.perf_counter() - started, 1),
               "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
               "total_seconds": round(time.perf_counter() - started, 1)}
    out = Path(train_args.output_dir)
    if trainer.is_world_process_zero():
        out.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in scorer.projector.state_dict().items()},
                  out / PROJECTOR_FILE)
        (out / "stage1.json").write_text(json.dumps(summary, indent=2))
    print(f"stage 1: caption LM loss {before:.4f} -> {after:.4f}; projector saved to "
          f"{out / PROJECTOR_FILE}")
    return summary
