from ._embedder import (
    Embedder as Embedder,
)
from ._embedder import (
    HashingEmbedder as HashingEmbedder,
)
from ._embedder import (
    SentenceTransformerEmbedder as SentenceTransformerEmbedder,
)
from ._model import (
    EMBEDDING_DIM as EMBEDDING_DIM,
)
from ._model import (
    MODEL_NAME as MODEL_NAME,
)
from ._model import (
    load_sentence_transformer as load_sentence_transformer,
)
from ._model import (
    model_path as model_path,
)
