"""The upstream simulator's answers of several choices (``n``, a completion's list of prompts)
and its ``echo``, streamed and not, and continuations of a choice other than the first."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from prsm.performance.fakes import SimSettings
from prsm.performance.fakes._policy import choices, completion_body, stream_words
from prsm.performance.fakes._server import _frames

SIM = SimSettings(name="s")


def answer(choice: int, tokens: int) -> str:
    mark = f"c{choice}." if choice else ""
    return "".join(f"{' ' if i else ''}{mark}tok{i}" for i in range(tokens))


def streamed(kind: str, body: dict[str, Any]) -> tuple[list[int], dict[int, str], Any]:
    """The choice index of each event, each choice's text, and the usage event's usage."""
    order: list[int] = []
    texts: dict[int, str] = {}
    usage = None
    frames = _frames(kind, SIM, {"model": "m", **body}, request_no=1, now=0)
    assert frames[-1] == b"data: [DONE]\n\n"
    for frame in frames[:-1]:
        obj = orjson.loads(frame[6:])
        usage = obj.get("usage", usage)
        for c in obj["choices"]:
            order.append(c["index"])
            piece = c["delta"]["content"] if kind == "chat" else c["text"]
            texts[c["index"]] = texts.get(c["index"], "") + piece
    return order, texts, usage


def test_n_choices_stream_token_by_token_each_its_own_answer() -> None:
    body = {"messages": [{"role": "user", "content": "hi there"}], "n": 3, "max_tokens": 4,
            "stream_options": {"include_usage": True}}  # fmt: skip
    order, texts, usage = streamed("chat", body)
    assert order == [0, 1, 2] * 4  # as vLLM sends them: each step, every choice in turn
    assert texts == {c: answer(c, 4) for c in range(3)}
    assert usage == {"prompt_tokens": 2, "completion_tokens": 12, "total_tokens": 14}


def test_several_prompts_number_their_choices_as_openai_does() -> None:
    body = {"prompt": ["one two", "three"], "n": 2, "max_tokens": 3, "echo": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    _, texts, usage = streamed("completion", body)
    heads = ["one two", "one two", "three", "three"]  # choice i * n + j answers prompt i
    assert texts == {c: heads[c] + answer(c, 3) for c in range(4)}
    assert usage == {"prompt_tokens": 3, "completion_tokens": 12, "total_tokens": 15}
    whole = orjson.loads(completion_body("completion", SIM, {"model": "m", **body}, 1, 0))
    assert [c["text"] for c in whole["choices"]] == [texts[c] for c in range(4)]
    assert [c["index"] for c in whole["choices"]] == [0, 1, 2, 3]


def test_a_continuation_of_a_later_choice_yields_exactly_its_rest() -> None:
    whole = answer(2, 16)
    for cut in (3, 9, 20, len(whole) - 1):
        prefix = whole[:cut]
        chat = {"messages": [{"role": "user", "content": "hi"},
                             {"role": "assistant", "content": prefix}],
                "continue_final_message": True, "add_generation_prompt": False}  # fmt: skip
        assert prefix + "".join(stream_words(SIM, chat)) == whole
        text = {"prompt": "say hi " + prefix}
        if "tok0" in prefix:  # (a prompt cut before: plain text, answered afresh)
            assert prefix + "".join(stream_words(SIM, text)) == whole


@pytest.mark.parametrize("n", [0, -1, 1.5, "2", True])
def test_an_n_that_is_not_a_positive_integer_is_refused(n: object) -> None:
    with pytest.raises(ValueError, match="n must be a positive integer"):
        choices({"messages": [], "n": n})
