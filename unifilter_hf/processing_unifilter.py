"""UniFilterProcessor: captions and interleaved documents -> `input_ids`, `attention_mask`, `pixel_values`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from tokenizers import AddedToken
from transformers import BatchFeature, ProcessorMixin

from .image_conversion import to_rgb
from .sample import Sample

# Stand-in for one image inside an unexpanded id list; never a real token id.
_IMAGE_SLOT = -1


class UniFilterProcessor(ProcessorMixin):
    r"""Turns [`Sample`]s (captions or OBELICS-style documents) into UniFilter model inputs.

    Prompts follow the official model (docs/model.md, "What the model computes"): a caption becomes `"<image>\n" +
    caption`; a document's slots are joined with `"\n\n"` (image slots as `<image>`, literal `<image>` in text as
    `<image-placeholder>`; images 1 pixel wide or high are dropped with their slot). Each text chunk is tokenized
    without special tokens, BOS is prepended unless already first and EOS appended unless already last (ids read
    from the tokenizer), and each image becomes `num_image_tokens` image-token ids.
    Rows are right-padded.

    Args:
        image_processor: a SigLIP image processor (resize to 384, scale 1/255, mean/std 0.5).
        tokenizer: the LLM tokenizer; `image_token` is added to it as a special token if missing.
        num_image_tokens: image-token ids per image; must match the model config.
        image_token: the placeholder string in prompts.
        add_bos_token / add_eos_token: apply the BOS/EOS rule (skipped if the tokenizer has no such token).
        pad_to_square: pad images to a square with the image-mean color before resizing (the official
            *training* preprocessing); the official scorers resize directly (False).
        max_length: longest spliced sequence. Longer ones are cut before the last token, never inside an
            image block (the cut image is dropped), and the final token (EOS) is kept for pooling.
        caption_max_ids: compatibility option reproducing the official caption scorer, which cuts the
            unspliced ids (an image counts as one id) to 75 and may lose EOS. Off (None) by default.

    Example:
        >>> from PIL import Image
        >>> batch = processor(images=[Image.open("cat.jpg")], text=["a cat on a sofa"])  # doctest: +SKIP
        >>> sorted(batch.keys())  # doctest: +SKIP
        ['attention_mask', 'input_ids', 'pixel_values']
    """

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        num_image_tokens: int = 144,
        image_token: str = "<image>",
        add_bos_token: bool = True,
        add_eos_token: bool = True,
        pad_to_square: bool = False,
        max_length: int = 8192,
        caption_max_ids: int | None = None,
        chat_template=None,
        **kwargs,
    ):
        self.num_image_tokens = num_image_tokens
        self.image_token = image_token
        self.add_bos_token = add_bos_token
        self.add_eos_token = add_eos_token
        self.pad_to_square = pad_to_square
        self.max_length = max_length
        self.caption_max_ids = caption_max_ids
        if tokenizer is not None and image_token not in tokenizer.get_vocab():
            tokenizer.add_tokens([AddedToken(image_token, special=True, normalized=False)], special_tokens=True)
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        try:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        except OSError as err:  # e.g. a folder of another layout, which has no processor files
            raise OSError(
                f"{err}\nIf {pretrained_model_name_or_path} is a checkpoint of another layout (such as an official "
                "UniFilter checkpoint), load its processor with AutoProcessor.from_pretrained (after "
                "`import unifilter_hf`)."
            ) from err

    @property
    def image_token_id(self) -> int:
        return self.tokenizer.convert_tokens_to_ids(self.image_token)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values"]

    # -- prompts -------------------------------------------------------------------------------------------
    def format_prompt(self, sample: Sample) -> tuple[str, list[Image.Image]]:
        """The prompt text with `<image>` placeholders and the images it refers to, in order.

        A sample whose `meta` holds `"prompt"` (a record already in the official layout, text with `<image>`
        placeholders) is used verbatim, as the official training code tokenizes it.
        """
        if isinstance(sample.meta.get("prompt"), str):
            prompt = sample.meta["prompt"]
            if prompt.count(self.image_token) != sample.num_images:
                raise ValueError(f"the prompt has {prompt.count(self.image_token)} {self.image_token} placeholders "
                                 f"for {sample.num_images} images")
            return prompt, sample.image_list
        if sample.kind == "caption":
            text = sample.texts[0] or ""
            return f"{self.image_token}\n" + text.replace(self.image_token, "image"), [sample.images[0]]
        slots, images = [], []
        for text, image in zip(sample.texts, sample.images):
            if image is not None:
                if min(image.size) <= 1:  # the official data pipeline drops 1-pixel images with their slot
                    continue
                slots.append(self.image_token)
                images.append(image)
            elif text is not None:
                slots.append(text.replace(self.image_token, "<image-placeholder>"))
        return "\n\n".join(slots), images

    # -- ids -----------------------------------------------------------------------------------------------
    def _unspliced_ids(self, prompts: Sequence[str]) -> list[list[int]]:
        """Token ids per prompt with one `_IMAGE_SLOT` per image and the BOS/EOS rule applied."""
        chunked = [p.split(self.image_token) for p in prompts]
        flat = [c for chunks in chunked for c in chunks]
        encoded = iter(self.tokenizer(flat, add_special_tokens=False)["input_ids"]) if flat else iter(())
        bos, eos = self.tokenizer.bos_token_id, self.tokenizer.eos_token_id
        rows = []
        for chunks in chunked:
            ids: list[int] = []
            for i, _ in enumerate(chunks):
                if i:
                    ids.append(_IMAGE_SLOT)
                ids.extend(next(encoded))
            if self.add_bos_token and bos is not None and (not ids or ids[0] != bos):
                ids.insert(0, bos)
            if self.add_eos_token and eos is not None and (not ids or ids[-1] != eos):
                ids.append(eos)
            rows.append(ids)
        return rows

    def _prompt_ids(self, samples: Sequence[Sample], prompts: Sequence[str]) -> list[list[int]]:
        """Unspliced ids per sample, with the optional official caption cut applied."""
        rows = self._unspliced_ids(prompts)
        if self.caption_max_ids:
            rows = [ids[: self.caption_max_ids] if s.kind == "caption" else ids for s, ids in zip(samples, rows)]
        return rows

    def _spliced_length(self, ids: list[int]) -> int:
        """Positions `ids` take once every image slot is expanded to its image-token block."""
        return len(ids) + ids.count(_IMAGE_SLOT) * (self.num_image_tokens - 1)

    def _splice(self, ids: list[int], max_length: int, truncation: str = "whole_images") -> tuple[list[int], int]:
        """Expand image slots to image-token blocks and cut to `max_length`; returns (ids, images kept).

        `truncation="official"` cuts the spliced ids at `max_length` as the official training does (EOS may be
        lost); an image block the cut would split is dropped whole, since the model needs complete blocks.
        """
        block = [self.image_token_id] * self.num_image_tokens
        if truncation == "official" and self._spliced_length(ids) > max_length:
            kept, used = [], 0
            for tok in ids:
                size = self.num_image_tokens if tok == _IMAGE_SLOT else 1
                if used + size > max_length:
                    break
                kept.append(tok)
                used += size
            ids = kept
        elif truncation != "whole_images" and truncation != "official":
            raise ValueError(f"truncation must be 'whole_images' or 'official', got {truncation!r}")
        if self._spliced_length(ids) > max_length:
            # Keep whole blocks only, and always keep the final token: the model pools on it.
            budget, kept = max_length - 1, []
            for tok in ids[:-1]:
                size = self.num_image_tokens if tok == _IMAGE_SLOT else 1
                if size > budget:
                    break
                kept.append(tok)
                budget -= size
            ids = kept + ids[-1:]
        out: list[int] = []
        for tok in ids:
            out.extend(block if tok == _IMAGE_SLOT else [tok])
        return out, ids.count(_IMAGE_SLOT)

    def sequence_lengths(self, samples: Sequence[Sample], max_length: int | None = None) -> list[int]:
        """Spliced lengths (real positions) the samples will take, without touching their pixels.

        Cheap (tokenization only): `QualityScorer` plans its micro-batches with it.
        """
        max_length = max_length or self.max_length
        prompts = [self.format_prompt(s)[0] for s in samples]
        return [min(max_length, self._spliced_length(ids)) for ids in self._prompt_ids(samples, prompts)]

    def pixel_values(self, images: list[Image.Image]) -> torch.Tensor:
        """The image step alone: images -> `(images, 3, H, W)` model pixels (RGB, optional square pad, SigLIP).

        Public so that decoding workers (the curation engine) can check their own resizing against it.
        """
        prepared = []
        for image in images:
            image = to_rgb(image)  # the same conversion as every other input path (alpha on white, 16-bit scaled)
            if self.pad_to_square:
                image = _expand_to_square(image, tuple(int(m * 255) for m in self.image_processor.image_mean))
            prepared.append(image)
        return self.image_processor(images=prepared, return_tensors="pt")["pixel_values"]

    # -- main entry ----------------------------------------------------------------------------------------
    def __call__(
        self,
        samples: Sample | Sequence[Sample] | None = None,
        images: Image.Image | Sequence[Image.Image] | None = None,
        text: str | Sequence[str] | None = None,
        max_length: int | None = None,
        return_image_counts: bool = False,
        truncation: str = "whole_images",
        **kwargs,
    ) -> BatchFeature:
        """Encode samples, or captions given as parallel `images` and `text`.

        Returns a `BatchFeature` with `input_ids` and `attention_mask` `(batch, seq)` (right-padded),
        `pixel_values` `(images, 3, H, W)` for all kept images in reading order (absent when there are
        none): exactly the model's inputs. `return_image_counts=True` adds `num_images` `(batch,)`, the images
        of each row that survived the `max_length` cut (not a model input: drop it before calling the model).
        `truncation`: `"whole_images"` (default: drop whole image blocks, keep the final EOS) or `"official"`
        (cut at `max_length` like the official training, see `_splice`).
        """
        if samples is None:
            if images is None or text is None:
                raise ValueError("pass `samples`, or captions as `images=` and `text=`")
            images = [images] if isinstance(images, Image.Image) else list(images)
            text = [text] if isinstance(text, str) else list(text)
            if len(images) != len(text):
                raise ValueError(f"{len(images)} images for {len(text)} captions")
            samples = [Sample.caption(im, t) for im, t in zip(images, text)]
        elif isinstance(samples, Sample):
            samples = [samples]
        max_length = max_length or self.max_length

        prompts, row_images = zip(*(self.format_prompt(s) for s in samples)) if samples else ((), ())
        rows, all_images, counts = [], [], []
        for ids, imgs in zip(self._prompt_ids(samples, prompts), row_images):
            spliced, kept = self._splice(ids, max_length, truncation)
            rows.append(spliced)
            all_images.extend(imgs[:kept])
            counts.append(kept)

        pad_id = self.tokenizer.pad_token_id
        pad_id = pad_id if pad_id is not None else (self.tokenizer.eos_token_id or 0)
        width = max((len(r) for r in rows), default=0)
        data = {
            "input_ids": torch.tensor([r + [pad_id] * (width - len(r)) for r in rows], dtype=torch.long),
            "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),
        }
        if return_image_counts:
            data["num_images"] = torch.tensor(counts, dtype=torch.long)
        if all_images:
            data["pixel_values"] = self.pixel_values(all_images)
        return BatchFeature(data)


def _expand_to_square(image: Image.Image, fill: tuple[int, ...]) -> Image.Image:
    """Pad to a square canvas of the fill color, the image centered (official training preprocessing)."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), fill)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


__all__ = ["UniFilterProcessor"]
