"""Embeddings: the bundled all-MiniLM-L6-v2 model, located and loaded offline, and the
``Embedder`` edge (the real model, coalescing concurrent calls; a hashing test double)."""

from .embedder import Embedder, HashingEmbedder, SentenceTransformerEmbedder
from .model import EMBEDDING_DIM, MODEL_NAME, load_sentence_transformer, model_path

__all__ = [
    "EMBEDDING_DIM",
    "MODEL_NAME",
    "Embedder",
    "HashingEmbedder",
    "SentenceTransformerEmbedder",
    "load_sentence_transformer",
    "model_path",
]
