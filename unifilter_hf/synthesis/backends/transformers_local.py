"""Generator backend running a local transformers model.

Two modes:
- ``"vision"`` (the paper's setting): a vision-language model (``AutoModelForImageTextToText`` +
  ``AutoProcessor``) sees the images through the processor's chat template.
- ``"rewrite"``: a text LLM (``AutoModelForCausalLM`` + tokenizer) rewrites each item's reference caption
  or document into the four levels; images are not used.

The first try decodes greedily; a retry after a malformed reply samples (temperature
``retry_temperature``) under a seeded, forked torch RNG, so global random state is left alone. Generation
is batched with left padding; only the new tokens are decoded and parsed.

Example:
    >>> backend = TransformersBackend("Qwen/Qwen2.5-VL-3B-Instruct", mode="vision", device="cuda",
    ...                               dtype="bfloat16", batch_size=8)  # doctest: +SKIP
    >>> # results = backend.generate(items)
"""

from __future__ import annotations

from typing import Any

import torch

from ..source_item import load_source_image
from .base import PromptedBackend


class TransformersBackend(PromptedBackend):
    """Four-level generation with a local model; see the module docstring.

    Args:
        model: a Hub id / local path, or an already loaded model.
        tokenizer: for ``rewrite`` mode with a loaded model (loaded from ``model`` when it is a path).
        processor: for ``vision`` mode with a loaded model (loaded from ``model`` when it is a path).
        mode: ``"vision"`` or ``"rewrite"``; default: ``"vision"`` when a processor is given or loadable as
            an image-text-to-text model, else ``"rewrite"``.
        max_new_tokens, batch_size, device, dtype: generation settings (``dtype`` a torch dtype or name).
        max_attempts: tries per item when replies are malformed.
        retry_temperature: sampling temperature of retries.
        model_kwargs: extra ``from_pretrained`` arguments (e.g. ``trust_remote_code``, ``attn_implementation``).
    """

    name = "transformers"

    def __init__(
        self,
        model: Any,
        *,
        tokenizer: Any = None,
        processor: Any = None,
        mode: str | None = None,
        max_new_tokens: int = 1024,
        batch_size: int = 4,
        device: str | torch.device | None = None,
        dtype: Any = None,
        max_attempts: int = 3,
        retry_temperature: float = 0.8,
        seed: int | None = 0,
        model_kwargs: dict[str, Any] | None = None,
    ):
        mode = mode or ("vision" if processor is not None else "rewrite")
        super().__init__(mode=mode, max_attempts=max_attempts, seed=seed)
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        kwargs = dict(model_kwargs or {})
        if dtype is not None:
            kwargs["dtype"] = dtype
        if isinstance(model, str):
            name = model
            if mode == "vision":
                from transformers import AutoModelForImageTextToText, AutoProcessor

                processor = processor or AutoProcessor.from_pretrained(name, **_loader_kwargs(kwargs))
                model = AutoModelForImageTextToText.from_pretrained(name, **kwargs)
            else:
                from transformers import AutoModelForCausalLM, AutoTokenizer

                tokenizer = tokenizer or AutoTokenizer.from_pretrained(name, **_loader_kwargs(kwargs))
                model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
        else:
            name = getattr(model, "name_or_path", None) or getattr(model.config, "_name_or_path", None)
        if mode == "vision" and processor is None:
            raise ValueError("vision mode needs a processor (pass processor= or a model path)")
        if mode == "rewrite" and tokenizer is None:
            raise ValueError("rewrite mode needs a tokenizer (pass tokenizer= or a model path)")
        self.model = name or type(model).__name__
        self.lm = model.to(device) if device is not None else model
        self.lm.eval()
        self.tokenizer = tokenizer if tokenizer is not None else processor.tokenizer
        self.processor = processor
        self.max_new_tokens = int(max_new_tokens)
        self.batch_size = max(1, int(batch_size))
        self.retry_temperature = float(retry_temperature)

    # ------------------------------------------------------------------------------------------- prompts
    def _text_prompt(self, messages: list[dict[str, Any]]) -> str:
        chat = [
            {"role": m["role"], "content": "\n\n".join(p["text"] for p in m["content"] if p["type"] == "text")}
            for m in messages
        ]
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        # A base model without a chat template: plain sections, then the answer starts.
        return "\n\n".join(m["content"] for m in chat) + "\n\nAnswer:\n"

    def _vision_chat(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        chat = []
        for m in messages:
            parts = [
                {"type": "image", "image": load_source_image(p["image"])} if p["type"] == "image" else dict(p)
                for p in m["content"]
            ]
            chat.append({"role": m["role"], "content": parts})
        return chat

    # ---------------------------------------------------------------------------------------- generation
    def complete(self, messages: list[list[dict[str, Any]]], attempt: int) -> list[str | BaseException]:
        out: list[str | BaseException] = []
        for start in range(0, len(messages), self.batch_size):
            batch = messages[start : start + self.batch_size]
            try:
                out += self._generate(batch, attempt)
            except Exception as err:  # noqa: BLE001 - e.g. an unreadable image or OOM fails this batch only
                out += [err] * len(batch)
        return out

    def _inputs(self, batch: list[list[dict[str, Any]]]):
        tok = self.tokenizer
        saved_side = tok.padding_side
        tok.padding_side = "left"  # decoder-only generation continues from the right end
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        try:
            if self.mode == "vision":
                return self.processor.apply_chat_template(
                    [self._vision_chat(m) for m in batch], add_generation_prompt=True, tokenize=True,
                    return_dict=True, return_tensors="pt", processor_kwargs={"padding": True},
                )
            prompts = [self._text_prompt(m) for m in batch]
            return tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        finally:
            tok.padding_side = saved_side

    @torch.inference_mode()
    def _generate(self, batch: list[list[dict[str, Any]]], attempt: int) -> list[str]:
        inputs = self._inputs(batch).to(self.lm.device)
        gen: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "pad_token_id": self.tokenizer.pad_token_id}
        if attempt == 0:
            gen["do_sample"] = False
        else:
            gen.update(do_sample=True, temperature=self.retry_temperature, top_p=0.95)
        devices = [self.lm.device] if self.lm.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed((self.seed or 0) * 1000 + attempt)
            out = self.lm.generate(**inputs, **gen)
        new = out[:, inputs["input_ids"].shape[1] :]
        return self.tokenizer.batch_decode(new, skip_special_tokens=True)


def _loader_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k in ("trust_remote_code", "revision", "token", "cache_dir")}
