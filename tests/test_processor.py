import numpy as np
import pytest
import torch
from PIL import Image

from tests.kit import IMAGE_SIZE, NUM_IMAGE_TOKENS, photo, tiny_processor
from unifilter_hf import Sample, UniFilterProcessor

CAPTION = "An orange tabby cat looks at the camera."


def _doc():
    return Sample.document(
        ["A short trip report.", None, "We stopped for <image> coffee.", None, None, "The end."],
        [None, photo("china"), None, photo("coffee"), photo("rocket"), None],
    )


def test_caption_ids_follow_the_official_prompt():
    proc = tiny_processor()
    tok = proc.tokenizer
    ids = proc(images=[photo("chelsea")], text=[CAPTION])["input_ids"][0].tolist()
    expected = [tok.bos_token_id] + [proc.image_token_id] * NUM_IMAGE_TOKENS
    expected += tok("\n" + CAPTION, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert ids == expected


def test_literal_image_tag_in_text_is_neutralised():
    proc = tiny_processor()
    prompt, images = proc.format_prompt(Sample.caption(photo("chelsea"), "a <image> of a cat"))
    assert prompt == "<image>\na image of a cat" and len(images) == 1
    prompt, images = proc.format_prompt(_doc())
    assert prompt == (
        "A short trip report.\n\n<image>\n\nWe stopped for <image-placeholder> coffee."
        "\n\n<image>\n\n<image>\n\nThe end."
    )
    assert len(images) == 3


def test_document_image_blocks_and_pooled_eos():
    proc = tiny_processor()
    batch = proc([_doc(), Sample.caption(photo("coffee"), "coffee")], return_image_counts=True)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert batch["num_images"].tolist() == [3, 1]
    assert batch["pixel_values"].shape == (4, 3, IMAGE_SIZE, IMAGE_SIZE)
    for row, m in zip(ids, mask):
        real = row[m.bool()].tolist()
        assert real[0] == proc.tokenizer.bos_token_id
        assert real[-1] == proc.tokenizer.eos_token_id  # the position the model pools on
        # every image is one contiguous block of exactly num_image_tokens ids
        is_img = np.array(real) == proc.image_token_id
        starts = np.flatnonzero(is_img & ~np.r_[False, is_img[:-1]])
        ends = np.flatnonzero(is_img & ~np.r_[is_img[1:], False])
        assert ((ends - starts + 1) == NUM_IMAGE_TOKENS).all()
    assert mask[1].sum() < mask[0].sum() and (ids[1][mask[1] == 0] == proc.tokenizer.pad_token_id).all()


@pytest.mark.parametrize("max_length", range(10, 90, 3))
def test_truncation_never_cuts_an_image_block(max_length):
    proc = tiny_processor()
    full = proc([_doc()])
    batch = proc([_doc()], max_length=max_length, return_image_counts=True)
    real = batch["input_ids"][0][batch["attention_mask"][0].bool()].tolist()
    assert len(real) <= max_length
    assert real[-1] == proc.tokenizer.eos_token_id
    n_img = real.count(proc.image_token_id)
    assert n_img % NUM_IMAGE_TOKENS == 0
    kept = n_img // NUM_IMAGE_TOKENS
    assert batch["num_images"].tolist() == [kept]
    assert batch.get("pixel_values", torch.empty(0, 3, IMAGE_SIZE, IMAGE_SIZE)).shape[0] == kept
    if kept:  # the kept images are the first ones, in order
        assert torch.equal(batch["pixel_values"], full["pixel_values"][:kept])
    # the kept prefix is the untruncated sequence's prefix
    full_real = full["input_ids"][0].tolist()
    assert real[:-1] == full_real[: len(real) - 1]


def test_one_pixel_images_are_dropped_with_their_slot():
    proc = tiny_processor()
    doc = Sample.document(["Intro.", None, None], [None, Image.new("RGB", (1, 40)), photo("coffee")])
    prompt, images = proc.format_prompt(doc)
    assert prompt == "Intro.\n\n<image>" and images == [doc.images[2]]


def test_tokenizer_without_bos_gets_no_bos():
    proc = tiny_processor(with_bos=False)
    ids = proc(images=[photo("coffee")], text=["coffee"])["input_ids"][0].tolist()
    assert ids[0] == proc.image_token_id and ids[-1] == proc.tokenizer.eos_token_id


def test_official_caption_cut_is_opt_in():
    long_caption = " ".join(["a cup of coffee with a spoon on a saucer"] * 12)
    proc = tiny_processor()
    full = proc(images=[photo("coffee")], text=[long_caption])["input_ids"][0].tolist()
    cut = tiny_processor(caption_max_ids=75)(images=[photo("coffee")], text=[long_caption])["input_ids"][0]
    # 75 unspliced ids, the image counting as one: 74 text/special ids + one 16-token block; EOS is lost
    assert len(cut) == 75 - 1 + NUM_IMAGE_TOKENS and len(full) > len(cut)
    assert cut.tolist() == full[: len(cut)] and cut[-1] != proc.tokenizer.eos_token_id


def test_pixels_match_a_hand_computed_siglip_preprocessing():
    proc = tiny_processor()
    img = photo("astronaut")
    px = proc(images=[img], text=["x"])["pixel_values"][0]
    ref = np.asarray(img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC), dtype=np.float32)
    ref = (ref / 255.0 - 0.5) / 0.5
    assert np.abs(px.numpy().transpose(1, 2, 0) - ref).max() < 1e-5


def test_pad_to_square_fills_with_the_image_mean():
    img = photo("rocket")  # 640 x 427: padded top and bottom
    assert img.width > img.height
    px = tiny_processor(pad_to_square=True)(images=[img], text=["x"])["pixel_values"][0]
    gray = (127 / 255 - 0.5) / 0.5
    assert torch.allclose(px[:, 0, :], torch.full_like(px[:, 0, :], gray), atol=1e-6)
    assert not torch.allclose(px[:, IMAGE_SIZE // 2, :], torch.full_like(px[:, 0, :], gray), atol=1e-2)


def test_grayscale_and_rgba_inputs_become_rgb():
    proc = tiny_processor()
    batch = proc(images=[photo("camera"), photo("coffee").convert("RGBA")], text=["a man", "coffee"])
    assert batch["pixel_values"].shape == (2, 3, IMAGE_SIZE, IMAGE_SIZE)


def test_16_bit_grayscale_gets_the_pixels_of_its_8_bit_version():
    # The processor converts with the package's one RGB conversion, as every loading path does.
    gray8 = photo("camera")
    gray16 = Image.fromarray(np.asarray(gray8, dtype=np.uint16) * 257)
    assert gray16.mode.startswith("I;16")
    proc = tiny_processor()
    px16, px8 = proc(images=[gray16, gray8.convert("RGB")], text=["a", "a"])["pixel_values"]
    assert torch.equal(px16, px8)


def test_options_round_trip(tmp_path):
    proc = tiny_processor(pad_to_square=True, max_length=300, caption_max_ids=75, add_bos_token=False)
    proc.save_pretrained(tmp_path)
    back = UniFilterProcessor.from_pretrained(tmp_path)
    for key in ("pad_to_square", "max_length", "caption_max_ids", "add_bos_token", "num_image_tokens"):
        assert getattr(back, key) == getattr(proc, key)
    assert back.image_token_id == proc.image_token_id
    sample = [Sample.caption(photo("coffee"), "coffee"), _doc()]
    a, b = proc(sample), back(sample)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_caption_arguments_are_checked():
    proc = tiny_processor()
    with pytest.raises(ValueError, match="2 images for 1 captions"):
        proc(images=[photo("coffee"), photo("rocket")], text=["x"])
    with pytest.raises(ValueError, match="pass `samples`"):
        proc(text=["x"])


def test_transparent_pixels_become_white_as_on_every_input_path():
    rgba = photo("coffee").convert("RGBA")
    rgba.putalpha(0)  # fully transparent: only the fill shows
    px = tiny_processor()(images=[rgba], text=["x"])["pixel_values"][0]
    assert torch.allclose(px, torch.ones_like(px))  # white -> (1 - 0.5) / 0.5


def test_sequence_lengths_are_the_real_positions_of_the_batch():
    proc = tiny_processor()
    samples = [Sample.caption(photo("chelsea"), CAPTION), _doc(), Sample.document(["Only text."], [None])]
    batch = proc(samples)
    assert proc.sequence_lengths(samples) == batch["attention_mask"].sum(-1).tolist()
    cut = proc(samples, max_length=40)["attention_mask"].sum(-1).tolist()
    assert proc.sequence_lengths(samples, max_length=40) == [min(n, 40) for n in batch["attention_mask"].sum(-1)]
    assert max(cut) <= 40
