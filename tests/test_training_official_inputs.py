"""Training inputs equal the official training preprocessing for records in the official layout.

The expected ids and pixels are rebuilt here from the official rule, independently of the processor:
split ``text`` on ``<image>``, tokenize each chunk without special tokens, one block of image-token ids per
image, BOS (``<s>``, registered for a tokenizer without BOS) prepended unless first, EOS appended unless
last; each image padded to a square of the processor's mean colour, centred, then the image processor.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.kit import photo
from unifilter_hf.tiny import NUM_IMAGE_TOKENS, tiny_model_and_processor, tiny_processor
from unifilter_hf.training import QualityCollator
from unifilter_hf.training.arguments import UniFilterModelConfig
from unifilter_hf.training.model_setup import add_official_bos, build_processor
from unifilter_hf.training.official_data import official_dataset

# Verbatim details the project's own layouts would change: double spaces, a caption image not first,
# document chunks without blank lines, a trailing newline.
RECORDS = [
    {"image": "coffee.png", "text": "<image>\nA cup of  coffee with a spoon.", "label": 3},
    {"image": "chelsea.png", "text": "An orange cat: <image>", "label": 1},
    {"image": ["china.png", "coffee.png"], "text": "We stopped.\n<image> Coffee  break.<image>\n", "label": 2},
]


@pytest.fixture
def official_records(tmp_path):
    for name in ("coffee", "chelsea", "china"):
        photo(name, 120).convert("RGB").save(tmp_path / f"{name}.png")  # non-square photographs
    (tmp_path / "train.json").write_text(json.dumps(RECORDS))
    return tmp_path


def _official_ids(text, tokenizer, image_id):
    ids = []
    for k, chunk in enumerate(text.split("<image>")):
        if k:
            ids += [image_id] * NUM_IMAGE_TOKENS
        ids += tokenizer(chunk, add_special_tokens=False)["input_ids"]
    bos = tokenizer.convert_tokens_to_ids("<s>")
    if ids[0] != bos:
        ids = [bos] + ids
    if ids[-1] != tokenizer.eos_token_id:
        ids = ids + [tokenizer.eos_token_id]
    return ids


def _official_pixels(paths, image_processor):
    fill = tuple(int(m * 255) for m in image_processor.image_mean)
    squares = []
    for path in paths:
        image = Image.open(path).convert("RGB")
        side = max(image.size)
        canvas = Image.new("RGB", (side, side), fill)
        canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        squares.append(canvas)
    return image_processor(images=squares, return_tensors="pt")["pixel_values"]


def _processor_without_bos():
    processor = tiny_processor(with_bos=False, pad_to_square=True)  # a Qwen-like tokenizer: no BOS
    assert processor.tokenizer.bos_token is None
    add_official_bos(processor.tokenizer)
    return processor


def test_official_records_give_the_official_ids_and_pixels(official_records):
    processor = _processor_without_bos()
    ds = official_dataset(official_records / "train.json")
    assert ds["text"] == [r["text"] for r in RECORDS]  # verbatim
    batch = QualityCollator(processor)(list(ds))
    image_id = processor.image_token_id
    for k, record in enumerate(RECORDS):
        got = batch["input_ids"][k][batch["attention_mask"][k].bool()].tolist()
        assert got == _official_ids(record["text"], processor.tokenizer, image_id), record["text"]
        assert got[0] == processor.tokenizer.convert_tokens_to_ids("<s>")
    paths = [official_records / p for r in RECORDS for p in ([r["image"]] if isinstance(r["image"], str)
                                                              else r["image"])]
    expected = _official_pixels(paths, processor.image_processor)
    assert batch["pixel_values"].shape == expected.shape
    assert torch.equal(batch["pixel_values"], expected)
    assert batch["labels"].tolist() == [3.0, 1.0, 2.0]


def test_truncation_official_cuts_at_max_length_and_default_keeps_eos(official_records):
    processor = _processor_without_bos()
    rows = list(official_dataset(official_records / "train.json"))
    official = QualityCollator(processor, truncation="official")
    # A cut inside the caption text: the official cut keeps the first max_length ids, EOS is lost.
    full = _official_ids(RECORDS[0]["text"], processor.tokenizer, processor.image_token_id)
    processor.max_length = cut = len(full) - 3
    assert official([rows[0]])["input_ids"][0].tolist() == full[:cut]
    default = QualityCollator(processor)([rows[0]])["input_ids"][0].tolist()
    assert len(default) == cut and default[:-1] == full[:cut - 1] and default[-1] == processor.tokenizer.eos_token_id
    # A cut inside the second image block: the block goes whole (the model needs complete blocks).
    full = _official_ids(RECORDS[2]["text"], processor.tokenizer, processor.image_token_id)
    processor.max_length = len(full) - 3
    batch = official([rows[2]])
    second_block = len(full) - 2 - NUM_IMAGE_TOKENS
    assert batch["input_ids"][0].tolist() == full[:second_block] and batch["pixel_values"].shape[0] == 1


def test_builder_layout_is_not_verbatim(official_records):
    """The control: the same caption through the builder layout gives other ids, so verbatim matters."""
    processor = _processor_without_bos()
    row = {"image": photo("coffee", 120), "text": "A cup of  coffee with a spoon.", "label": 3, "kind": "caption"}
    ids = QualityCollator(processor)([row])["input_ids"][0].tolist()
    assert ids != _official_ids("A cup of  coffee with a spoon.<image>", processor.tokenizer,
                                processor.image_token_id)


def test_recipe_pad_to_square_overrides_the_saved_processor(tmp_path):
    model, processor = tiny_model_and_processor()
    processor.pad_to_square = False  # as a converted official checkpoint saves it
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = build_processor(UniFilterModelConfig(model_name_or_path=str(tmp_path), pad_to_square=True))
    assert loaded.pad_to_square is True
    wide = Image.fromarray(np.full((20, 60, 3), 250, dtype=np.uint8))
    corner = loaded.pixel_values([wide])[0, :, 0, 0]  # the padded band has the mean colour, 127 -> ~0
    assert corner.abs().max() < 0.01


def test_added_bos_resizes_embeddings_like_the_official():
    """A tokenizer with no ``<s>`` at all (Qwen): one new token, the matrix resized to it, its row the mean."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from unifilter_hf import UniFilterForQualityScoring
    from unifilter_hf.tiny import tiny_config
    from unifilter_hf.training.model_setup import resize_for_official_bos

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(["a cup of coffee", "a cat"] * 4, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")
    assert add_official_bos(tokenizer) == 1 and tokenizer.bos_token == "<s>"
    bos = tokenizer.bos_token_id
    assert bos == tokenizer.vocab_size  # a new entry after the base vocabulary
    torch.manual_seed(0)
    model = UniFilterForQualityScoring(tiny_config(image_token_id=bos + 1))  # 320 rows: padded, like Qwen's
    old = model.get_input_embeddings().weight[:bos].detach().clone()
    assert resize_for_official_bos(model, tokenizer)
    weight = model.get_input_embeddings().weight
    assert weight.shape[0] == bos + 1 and model.config.text_config.vocab_size == bos + 1
    assert torch.equal(weight[:bos], old) and torch.allclose(weight[bos], old.mean(0))
