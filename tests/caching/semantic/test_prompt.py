"""Long prompts: the context must match exactly, only the question is compared."""

from __future__ import annotations

from prsm.performance.caching.semantic._prompt import split_prompt

DOC = "\n\n".join(f"Paragraph {i}: " + "the cache keeps answers close to the user " * 12
                  for i in range(6))  # fmt: skip


def split(text: str) -> tuple[str | None, str]:
    return split_prompt(text, long_words=150, question_words=80)


def test_short_prompts_are_compared_whole() -> None:
    assert split("What is the capital of France?") == (None, "What is the capital of France?")


def test_question_after_or_before_the_document() -> None:
    ctx, q = split(DOC + "\n\nSummarize the text above.")
    assert q == "Summarize the text above."
    ctx2, q2 = split(DOC + "\n\nTranslate the text above into French.")
    assert ctx2 == ctx and q2 != q  # same context: the questions decide
    first, qf = split("Summarize the text below.\n\n" + DOC)
    assert qf == "Summarize the text below." and first != ctx


def test_any_change_in_the_context_changes_its_hash() -> None:
    ctx, _ = split(DOC + "\n\nSummarize the text above.")
    edited, _ = split(DOC.replace("Paragraph 3", "Paragraph 4") + "\n\nSummarize the text above.")
    reflowed, _ = split(DOC.replace(" the cache", "\nthe cache") + "\n\nSummarize the text above.")
    assert edited != ctx
    assert reflowed == ctx  # white space is folded


def test_one_long_paragraph_keeps_its_last_sentence() -> None:
    text = ("Some context sentence about caches. " * 40) + "What does it say about TTLs?"
    ctx, q = split(text)
    assert ctx is not None and q == "What does it say about TTLs?"
