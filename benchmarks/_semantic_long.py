"""Long prompts: a document and a question, where what differs is past the embedder's window.

    python -m benchmarks.semantic --write-sets    # also writes the long-prompt set

A prompt of several hundred words embeds from its first 256 tokens only, so two prompts with
one document and different questions — or one question and documents that differ further on —
embed alike. The set (``benchmarks/data/semantic_long.jsonl``, documents in
``semantic_long_docs.json``: sections of this project's README, frozen when the set was
written) pairs such prompts:

* near misses (label 0): the same document with another question (``long_question``), the
  same question with a document whose tail differs (``long_doc_tail``) or with one figure
  changed in its middle (``long_doc_edit``), and the question first with documents differing
  in their tails (``long_question_first``);
* paraphrases (label 1): the same document with the question reworded
  (``long_paraphrase``), the document re-wrapped (``long_reflow``), and the question first,
  reworded (``long_paraphrase_first``).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"
DOCS = DATA / "semantic_long_docs.json"
PAIRS = DATA / "semantic_long.jsonl"
README = Path(__file__).resolve().parent.parent / "README.md"

NEAR = [
    ("Summarize the text above in three bullet points.", "Translate the text above into French."),
    (
        "List the risks described in the text above.",
        "List the benefits described in the text above.",
    ),
    ("Rewrite the text above for a beginner.", "Rewrite the text above for an expert."),
    ("Shorten the text above to one paragraph.", "Expand the text above into a longer article."),
    ("What does the text above say about latency?", "What does the text above say about memory?"),
    ("Is the text above written for developers?", "Is the text above written for managers?"),
    (
        "Which figure in the text above is the largest?",
        "Which figure in the text above is the smallest?",
    ),
    (
        "Turn the text above into a list of questions.",
        "Turn the text above into a list of answers.",
    ),
    ("Summarize the text above in English.", "Summarize the text above in German."),
    ("What is the first step described above?", "What is the last step described above?"),
    ("Write a short title for the text above.", "Write a short conclusion for the text above."),
    ("Which library does the text above recommend?", "Which library does the text above reject?"),
]
PARA = [
    (
        "Summarize the text above in three bullet points.",
        "Give me a three-bullet summary of the text above.",
    ),
    ("Translate the text above into French.", "Please translate the above text to French."),
    ("List the risks described in the text above.", "What risks does the text above describe?"),
    (
        "Rewrite the text above for a beginner.",
        "Rewrite the above so that a beginner can follow it.",
    ),
    (
        "What does the text above say about latency?",
        "What is said about latency in the text above?",
    ),
    (
        "Shorten the text above to one paragraph.",
        "Condense the text above into a single paragraph.",
    ),
    (
        "Which library does the text above recommend?",
        "What library is recommended in the text above?",
    ),
    ("Write a short title for the text above.", "Suggest a short title for the text above."),
]


def write_docs(readme: Path = README, n: int = 16, min_words: int = 250) -> list[dict[str, str]]:
    """Freeze ``n`` README sections of at least ``min_words`` words as the documents."""
    text = readme.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    docs = []
    for part in re.split(r"\n(?=##+ )", text):
        title, _, body = part.partition("\n")
        body = "\n".join(line for line in body.splitlines() if not line.startswith("|"))
        body = re.sub(r"\n{3,}", "\n\n", body).strip()
        if len(body.split()) >= min_words:
            docs.append({"title": title.lstrip("# ").strip(), "text": body})
    docs = docs[:n]
    DOCS.write_text(json.dumps(docs, indent=1, ensure_ascii=False) + "\n")
    return docs


def load_docs() -> list[dict[str, str]]:
    docs: list[dict[str, str]] = json.loads(DOCS.read_text(encoding="utf-8"))
    return docs


def _edit(text: str) -> str:
    """One figure in the middle third of ``text`` changed (or one word, if it has none)."""
    third = len(text) // 3
    m = re.search(r"\d+", text[third : 2 * third])
    if m:
        at = third + m.start()
        return text[:at] + str(int(m.group()) + 7) + text[third + m.end() :]
    at = text.index(" ", third)
    return text[:at] + " never" + text[at:]


def _reflow(text: str) -> str:
    """The same words wrapped otherwise (another editor, another paste)."""
    return re.sub(r"[ \t]*\n[ \t]*(?!\n)", " ", text).replace("  ", " ")


def text(row: dict[str, Any], side: str, docs: list[dict[str, str]]) -> str:
    """The prompt of ``side`` ("a" or "b") of a long-prompt pair."""
    doc = docs[row[f"doc_{side}"]]["text"]
    tail = row.get(f"tail_{side}")
    if tail is not None:
        doc = doc + "\n\n" + docs[tail]["text"]
    if side == "b" and row.get("edit_b"):
        doc = _edit(doc)
    if side == "b" and row.get("reflow_b"):
        doc = _reflow(doc)
    q = row[f"q_{side}"]
    return f"{q}\n\n{doc}" if row.get("first") else f"{doc}\n\n{q}"


def generate(n_docs: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []

    def add(kind: str, label: int, **kw: Any) -> None:
        rows.append({"kind": kind, "label": label, "split": "report", **kw})

    for i in range(n_docs):
        j = (i + 1) % n_docs
        k = (i + 2) % n_docs
        for qa, qb in rng.sample(NEAR, 3):
            add("long_question", 0, doc_a=i, doc_b=i, q_a=qa, q_b=qb)
        q = rng.choice(NEAR)[0]
        add("long_doc_tail", 0, doc_a=i, doc_b=i, tail_a=j, tail_b=k, q_a=q, q_b=q)
        add("long_doc_edit", 0, doc_a=i, doc_b=i, q_a=q, q_b=q, edit_b=True)
        add("long_question_first", 0, doc_a=i, doc_b=i, tail_a=j, tail_b=k, q_a=q, q_b=q,
            first=True)  # fmt: skip
        for qa, qb in rng.sample(PARA, 2):
            add("long_paraphrase", 1, doc_a=i, doc_b=i, q_a=qa, q_b=qb)
        add("long_reflow", 1, doc_a=i, doc_b=i, q_a=q, q_b=q, reflow_b=True)
        qa, qb = rng.choice(PARA)
        add("long_paraphrase_first", 1, doc_a=i, doc_b=i, q_a=qa, q_b=qb, first=True)
    return rows


def write() -> dict[str, int]:
    docs = write_docs()
    rows = generate(len(docs))
    PAIRS.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"docs": len(docs), "pairs": len(rows)}


def load() -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    return rows, load_docs()
