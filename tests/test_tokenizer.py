"""The tiny task's tokenizer: Qwen-style chat template, round trips, digits split one by one."""

import pytest
from transformers import AutoTokenizer

from ssp.data_pipeline.tiny.model import TinyModelConfig, build_tiny_model, save_tiny_model
from ssp.data_pipeline.tiny.problems import generate
from ssp.data_pipeline.tiny.tokenizer import IM_END, IM_START, train_tokenizer


@pytest.fixture(scope="module")
def problems():
    return [p for d in ("algebra", "counting", "statistics") for p in generate(d, 60, seed=11)]


@pytest.fixture(scope="module")
def saved(problems, tmp_path_factory):
    """Tokenizer as trained, and as reloaded from a complete model folder (what every stage loads)."""
    texts = [p.problem for p in problems] + [s.text for p in problems for s in p.solutions]
    tok = train_tokenizer(texts, vocab_size=400)
    folder = tmp_path_factory.mktemp("model")
    save_tiny_model(build_tiny_model(TinyModelConfig(num_hidden_layers=1), tok, seed=0), tok, folder)
    return tok, AutoTokenizer.from_pretrained(folder)


def test_chat_template_round_trip(saved, problems):
    tok, loaded = saved
    for p in problems[:20]:
        msgs = [{"role": "user", "content": p.problem}, {"role": "assistant", "content": p.solutions[0].text}]
        text = tok.apply_chat_template(msgs, tokenize=False)
        assert text == (
            f"{IM_START}user\n{p.problem}{IM_END}\n{IM_START}assistant\n{p.solutions[0].text}{IM_END}\n"
        )
        ids = loaded(text, add_special_tokens=False)["input_ids"]
        assert ids == tok(text, add_special_tokens=False)["input_ids"], "reloaded tokenizer differs"
        assert loaded.decode(ids) == text
        assert loaded.apply_chat_template(msgs, tokenize=False) == text


def test_generation_prompt_and_special_tokens(saved):
    _, tok = saved
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 2?"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt.endswith(f"{IM_START}assistant\n")
    assert tok.eos_token == IM_END and tok.pad_token != tok.eos_token
    for special in (IM_START, IM_END):
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1


def test_digits_are_single_tokens(saved):
    _, tok = saved
    pieces = tok.tokenize("x = 12345")
    assert [p for p in pieces if p.strip("Ġ").isdigit()] == list("12345")


def test_assistant_mask_covers_exactly_the_answer(saved):
    """The template's {% generation %} markers: TRL's assistant_only_loss relies on them."""
    _, tok = saved
    answer = "Sum: 3 + 4 = 7. \\boxed{7}"
    out = tok.apply_chat_template(
        [{"role": "user", "content": "Add 3 and 4."}, {"role": "assistant", "content": answer}],
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    masked = [i for i, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert tok.decode(masked) == answer + IM_END
