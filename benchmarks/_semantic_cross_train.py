"""Fine-tune the semantic cache's cross-encoder (MiniLM + LoRA + a head) on QQP dev.

Standalone (torch, transformers, peft, safetensors; a GPU): it reads what
``python -m benchmarks.semantic --export-cross DIR`` wrote into DIR (``data.json.gz``, the
base model in ``base/``) and writes into ``$OUT``: ``oof.npy`` (each dev candidate row scored
by the one of 5 models that did not see its lookup), ``test.npy`` and ``sets.npy`` (scored by
a sixth model fitted on all of dev) and ``cross_encoder.safetensors`` (that model's LoRA
matrices in half precision and its head: ~0.7 MB).

    OUT=out python benchmarks/_semantic_cross_train.py DIR

Each pair is [CLS] query [SEP] cached [SEP] (the order swapped at random in training, so the
model does not learn which side is which), at most 64 tokens, mean-pooled, a linear head,
binary cross-entropy; LoRA rank 8 (alpha 16, dropout 0.1) on every linear layer of the six
blocks; AdamW at 1e-3, 6 % warm-up then linear decay, batches of 256, 2 epochs, bf16 autocast.
Measured on an H200: 4,000-7,500 pairs a second, ~30 s a model, 5.6 min for all six with
the tokenising.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
from safetensors.torch import save_file
from torch import nn
from transformers import AutoTokenizer, BertModel

HERE = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
OUT = Path(os.environ.get("OUT", "out"))
EPOCHS = float(os.environ.get("EPOCHS", "2"))
FOLDS = int(os.environ.get("FOLDS", "5"))
RANK = int(os.environ.get("LORA_R", "8"))
LR = float(os.environ.get("LR", "1e-3"))
BATCH = 256
MAX_LENGTH = 64
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
Rows = list[dict[str, Any]]


def encode(tok: Any, rows: Rows, swap: bool = False) -> tuple[torch.Tensor, ...]:
    a = [r["c"] if swap else r["q"] for r in rows]
    b = [r["q"] if swap else r["c"] for r in rows]
    t = tok(a, b, truncation="longest_first", max_length=MAX_LENGTH, padding="max_length",
            return_tensors="pt")  # fmt: skip
    return t["input_ids"], t["token_type_ids"], t["attention_mask"]


class CrossEncoderModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        base = BertModel.from_pretrained(str(HERE / "base"), add_pooling_layer=False,
                                         dtype=torch.float32)  # fmt: skip
        targets = ["query", "key", "value", "attention.output.dense", "intermediate.dense",
                   "output.dense"]  # fmt: skip
        cfg = LoraConfig(r=RANK, lora_alpha=2 * RANK, lora_dropout=0.1, target_modules=targets)
        self.bert = get_peft_model(base, cfg)
        self.head = nn.Linear(384, 1)

    def forward(self, ids: torch.Tensor, tt: torch.Tensor, am: torch.Tensor) -> torch.Tensor:
        h = self.bert(input_ids=ids, token_type_ids=tt, attention_mask=am).last_hidden_state
        m = am.unsqueeze(-1).to(h.dtype)
        out: torch.Tensor = self.head((h * m).sum(1) / m.sum(1)).squeeze(-1)
        return out


def _batch(x: tuple[torch.Tensor, ...], idx: torch.Tensor) -> list[torch.Tensor]:
    ids, tt, am = (t[idx] for t in x)
    n = int(am.sum(1).max())
    return [ids[:, :n].to(DEVICE), tt[:, :n].to(DEVICE), am[:, :n].to(DEVICE)]


def train(tok: Any, rows: Rows) -> CrossEncoderModel:
    torch.manual_seed(0)
    model = CrossEncoderModel().to(DEVICE)
    y = torch.tensor([float(r["y"]) for r in rows])
    x, xs = encode(tok, rows), encode(tok, rows, swap=True)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.01)
    steps = int(math.ceil(len(rows) / BATCH) * EPOCHS)
    warm = max(1.0, steps * 0.06)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, s / warm) * max(0.0, 1 - s / steps)
    )
    gen = torch.Generator().manual_seed(0)
    step, t0 = 0, time.time()
    model.train()
    while step < steps:
        perm = torch.randperm(len(rows), generator=gen)
        for i in range(0, len(rows), BATCH):
            if step >= steps:
                break
            idx = perm[i : i + BATCH]
            swap = (torch.rand(len(idx), generator=gen) < 0.5)[:, None]
            both = tuple(torch.where(swap, s[idx], p[idx]) for s, p in zip(xs, x, strict=True))
            with torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=DEVICE == "cuda"):
                logit = model(*_batch(both, torch.arange(len(idx))))
            loss = nn.functional.binary_cross_entropy_with_logits(logit.float(), y[idx].to(DEVICE))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 200 == 0:
                rate = step * BATCH / (time.time() - t0)
                print(f"step {step}/{steps} loss {loss.item():.3f} {rate:.0f} pairs/s", flush=True)
    print(f"trained {steps} steps in {time.time() - t0:.1f}s", flush=True)
    return model


@torch.no_grad()
def score(tok: Any, model: CrossEncoderModel, rows: Rows) -> np.ndarray:
    model.eval()
    if not rows:
        return np.zeros(0)
    x = encode(tok, rows)
    out = []
    for i in range(0, len(rows), 1024):
        batch = _batch(x, torch.arange(i, min(i + 1024, len(rows))))
        with torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=DEVICE == "cuda"):
            out.append(torch.sigmoid(model(*batch).float()).cpu())
    return torch.cat(out).numpy()


def main() -> None:
    with gzip.open(HERE / "data.json.gz", "rt") as fh:
        data = json.load(fh)
    tok = AutoTokenizer.from_pretrained(str(HERE / "base"))
    OUT.mkdir(parents=True, exist_ok=True)
    dev, lab = data["dev"], data["lab"]
    oof = np.full(len(dev), np.nan)
    for f in range(FOLDS):
        model = train(tok, [r for r in dev + lab if r["f"] != f])
        idx = [i for i, r in enumerate(dev) if r["f"] == f]
        oof[idx] = score(tok, model, [dev[i] for i in idx])
        np.save(OUT / "oof.npy", oof)
    model = train(tok, dev + lab)
    np.save(OUT / "test.npy", score(tok, model, data["test"]))
    np.save(OUT / "sets.npy", score(tok, model, data["sets"]))
    state = {k: v.detach().half().cpu().contiguous()
             for k, v in get_peft_model_state_dict(model.bert).items()}  # fmt: skip
    state.update({f"head.{k}": v.detach().float().cpu().contiguous()
                  for k, v in model.head.state_dict().items()})  # fmt: skip
    meta = {"lora_r": str(RANK), "lora_alpha": str(2 * RANK), "pooling": "mean",
            "max_length": str(MAX_LENGTH), "trained_on": "qqp_pairs_dev.jsonl"}  # fmt: skip
    save_file(state, str(OUT / "cross_encoder.safetensors"), metadata=meta)


if __name__ == "__main__":
    main()
