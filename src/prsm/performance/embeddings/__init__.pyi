from ._embedder import (
    Embedder as Embedder,
    HashingEmbedder as HashingEmbedder,
    SentenceTransformerEmbedder as SentenceTransformerEmbedder,
)
from ._model import (
    EMBEDDING_DIM as EMBEDDING_DIM,
    MODEL_NAME as MODEL_NAME,
    load_sentence_transformer as load_sentence_transformer,
    model_path as model_path,
)
