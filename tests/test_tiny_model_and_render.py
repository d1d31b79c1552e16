import torch
from transformers import AutoModelForCausalLM

from datamind_ext.models.tiny import build_tiny_model
from datamind_ext.protocol import observation_message, render_continuation, render_messages

CONV = [
    {"role": "system", "content": "You are a data analyst."},
    {"role": "user", "content": "What is the mean price in sales.csv?"},
    {"role": "assistant", "content": "<think>load</think>\n<code>\n```python\nprint(df['price'].mean())\n```\n</code>"},
    observation_message("The code ran successfully:\n12.5").model_dump(),
    {"role": "assistant", "content": "<answer>12.5</answer>"},
]


def test_tiny_model_loads_and_runs(tiny_model_path, tiny_tokenizer):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    assert model.config.model_type == "qwen2"
    ids = tiny_tokenizer.apply_chat_template(CONV[:2], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model(**ids)
    assert out.logits.shape[-1] == model.config.vocab_size
    assert torch.isfinite(out.logits).all()


def test_builder_is_cached_and_deterministic(tiny_model_path, tmp_path):
    assert build_tiny_model("test") == tiny_model_path
    rebuilt = build_tiny_model("test", cache_dir=tmp_path)
    assert (rebuilt / "model.safetensors").read_bytes() == (tiny_model_path / "model.safetensors").read_bytes()


def test_chat_template_renders_qwen_layout(tiny_tokenizer):
    text = tiny_tokenizer.apply_chat_template(CONV, tokenize=False)
    assert text.startswith("<|im_start|>system\nYou are a data analyst.<|im_end|>\n<|im_start|>user\n")
    assert "<|im_start|>user\n<interpreter>\nThe code ran successfully:\n12.5\n</interpreter><|im_end|>\n" in text
    default = tiny_tokenizer.apply_chat_template(CONV[1:2], tokenize=False, add_generation_prompt=True)
    assert default == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nWhat is the mean price in sales.csv?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_tags_are_single_non_special_tokens(tiny_tokenizer):
    for tag in ("<think>", "</code>", "<interpreter>", "</answer>"):
        ids = tiny_tokenizer.encode(tag, add_special_tokens=False)
        assert len(ids) == 1
        assert tiny_tokenizer.decode(ids, skip_special_tokens=True) == tag


def test_numbers_are_split_into_single_digits_and_round_trip(tiny_tokenizer):
    """As Qwen2.5's tokenizer does: a printed value and its copy in the answer are the same digit tokens."""
    for text in ("59786.09", "<answer>-1.6</answer>", "df['kwh'] > 2024"):
        ids = tiny_tokenizer.encode(text, add_special_tokens=False)
        pieces = [tiny_tokenizer.decode([i]) for i in ids]
        assert all(len(p.strip()) == 1 for p in pieces if any(ch.isdigit() for ch in p)), pieces
        assert tiny_tokenizer.decode(ids) == text


def test_render_matches_template_and_masks_assistant_only(tiny_tokenizer):
    r = render_messages(tiny_tokenizer, CONV)
    whole = tiny_tokenizer.apply_chat_template(CONV, tokenize=False)
    assert r.input_ids == tiny_tokenizer.encode(whole, add_special_tokens=False)
    trained = tiny_tokenizer.decode([t for t, m in zip(r.input_ids, r.loss_mask) if m])
    assert trained == CONV[2]["content"] + "<|im_end|>\n" + CONV[4]["content"] + "<|im_end|>\n"
    # the first token of each assistant turn is trained (the reference's off-by-one)
    first = r.input_ids.index(tiny_tokenizer.convert_tokens_to_ids("<think>"))
    assert r.loss_mask[first] == 1 and r.loss_mask[first - 1] == 0


def test_continuation_equals_template_delta(tiny_tokenizer):
    head = render_messages(tiny_tokenizer, CONV[:3])
    cont = render_continuation(tiny_tokenizer, CONV[:3], [CONV[3]])
    full = render_messages(tiny_tokenizer, CONV[:4], add_generation_prompt=True)
    assert head.input_ids + cont == full.input_ids
