"""Embeddings: the bundled all-MiniLM-L6-v2 model, located and loaded offline."""

from .model import EMBEDDING_DIM, MODEL_NAME, load_sentence_transformer, model_path

__all__ = ["EMBEDDING_DIM", "MODEL_NAME", "load_sentence_transformer", "model_path"]
