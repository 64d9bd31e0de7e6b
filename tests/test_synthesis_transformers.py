"""The transformers backend end to end: real ``generate()`` text from a tiny local causal LM.

A tiny random Llama and a byte-level BPE tokenizer are built in memory; the model is overfit for a few dozen
steps on one valid JSON reply to the backend's own prompt, so greedy decoding emits it and the backend
parses genuinely generated text. The untrained model's gibberish must be reported as malformed.
"""

import json

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from tests.kit import photo
from unifilter_hf.synthesis import SourceItem, TransformersBackend, build_messages, synthesize

REFERENCE = "a red cup on a white saucer next to a silver spoon"
REPLY = json.dumps({
    "0": "two dogs running on a sandy beach",
    "1": "a blue bowl under a black plate with a fork",
    "2": "a red cup on a black saucer next to a silver spoon",
    "3": REFERENCE,
})
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _item(ref=REFERENCE, iid="t/cup"):
    return SourceItem(iid, "caption", [photo("coffee", size=32)], reference=ref)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Matrices this small: extra threads only add synchronisation (40x slower on a busy 2-core box).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer():
    msgs = build_messages(_item(), "rewrite")
    corpus = ["\n\n".join(p["text"] for m in msgs for p in m["content"]), REPLY] * 3
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=800, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    hf.chat_template = CHAT_TEMPLATE
    return hf


def _tiny_llama(tokenizer, seed=0):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                      bos_token_id=None, tie_word_embeddings=True)
    return LlamaForCausalLM(cfg)


@pytest.fixture(scope="module")
def trained(tokenizer):
    model = _tiny_llama(tokenizer)
    backend = TransformersBackend(model, tokenizer=tokenizer, mode="rewrite", max_new_tokens=96)
    prompt = backend._text_prompt(build_messages(_item(), "rewrite"))  # exactly what generate() will see
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    r_ids = tokenizer(REPLY, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = torch.tensor([p_ids + r_ids])
    labels = torch.tensor([[-100] * len(p_ids) + r_ids])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(80):
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert loss.item() < 0.1
    return backend


def test_generated_text_is_parsed_into_four_levels(trained):
    [res] = trained.generate([_item()])
    assert res.ok, (res.error, res.raw)
    assert res.raw.strip() == REPLY  # real generate() output, decoded from new tokens only
    assert res.outputs[3].text == REFERENCE
    assert res.outputs[2].text == "a red cup on a black saucer next to a silver spoon"
    assert res.attempts == 1
    assert res.provenance.generator == "transformers" and res.provenance.extra == {"mode": "rewrite"}


def test_batched_generation_with_left_padding(trained):
    # a second, shorter prompt in the same batch forces padding; the trained prompt must still decode right
    results = trained.generate([_item("a cup", iid="t/short"), _item()])
    assert results[1].ok and results[1].raw.strip() == REPLY
    assert not results[0].ok or results[0].raw != REPLY


def test_untrained_gibberish_is_reported_not_written(tokenizer, tmp_path):
    backend = TransformersBackend(_tiny_llama(tokenizer, seed=1), tokenizer=tokenizer, mode="rewrite",
                                  max_new_tokens=24, max_attempts=2)
    report = synthesize([_item()], backend, tmp_path / "out")
    assert (report.generated, report.failed) == (0, 1)
    err = report.errors[0]
    assert err["error"].startswith("malformed reply") and err["attempts"] == 2 and err["raw"]
    assert not (tmp_path / "out" / "records.jsonl").exists()


def test_rewrite_mode_needs_a_reference(trained):
    [res] = trained.generate([SourceItem("t/noref", "caption", [photo("coffee", 16)])])
    assert not res.ok and "needs a reference" in res.error and res.attempts == 0


VLM_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for p in m['content'] %}"
    "{% if p['type'] == 'image' %}<image>{% else %}{{ p['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_vision_mode_with_a_tiny_llava_sees_the_image():
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor, SiglipVisionConfig
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    item = SourceItem("t/vlm", "caption", [photo("coffee", size=48)])  # no reference: the model must look
    msgs = build_messages(item, "vision")
    corpus = ["\n\n".join(p["text"] for m in msgs for p in m["content"] if p["type"] == "text"), REPLY] * 3
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=800, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    processor = LlavaProcessor(image_processor=SiglipImageProcessorPil(size={"height": 32, "width": 32}),
                               tokenizer=hf, patch_size=8, vision_feature_select_strategy="full",
                               chat_template=VLM_TEMPLATE)
    torch.manual_seed(0)
    text_cfg = _tiny_llama(hf).config
    vision_cfg = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                    num_attention_heads=2, image_size=32, patch_size=8)
    model = LlavaForConditionalGeneration(LlavaConfig(
        vision_config=vision_cfg, text_config=text_cfg, image_token_id=hf.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="full", vision_feature_layer=-1))
    backend = TransformersBackend(model, processor=processor, max_new_tokens=96)
    assert backend.mode == "vision"

    inputs = backend._inputs([msgs])  # the very inputs generate() will get
    assert inputs["pixel_values"].shape == (1, 3, 32, 32)
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == 16  # 4x4 patches spliced in
    r_ids = hf(REPLY, add_special_tokens=False)["input_ids"] + [hf.eos_token_id]
    ids = torch.cat([inputs["input_ids"], torch.tensor([r_ids])], 1)
    labels = torch.cat([torch.full_like(inputs["input_ids"], -100), torch.tensor([r_ids])], 1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(80):
        loss = model(input_ids=ids, pixel_values=inputs["pixel_values"], labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()

    [res] = backend.generate([item])
    assert res.ok, (res.error, res.raw)
    assert res.raw.strip() == REPLY and res.outputs[3].text == REFERENCE
    assert res.provenance.extra == {"mode": "vision"}
