from ._cache import SemanticCache as SemanticCache
from ._cascade import CascadeVerifier as CascadeVerifier
from ._factory import build_semantic_cache as build_semantic_cache
from ._index import (
    AutoIndex as AutoIndex,
    FlatIndex as FlatIndex,
    HNSWIndex as HNSWIndex,
    VectorIndex as VectorIndex,
)
from ._index_ivf import IVFIndex as IVFIndex
from ._match import SemanticMatch as SemanticMatch
from ._response_cache import SemanticResponseCache as SemanticResponseCache
from ._settings import SemanticSettings as SemanticSettings
from ._store import EntryStore as EntryStore, MemoryStore as MemoryStore
from ._store_redis import RedisStore as RedisStore
from ._store_sqlite import SQLiteStore as SQLiteStore
from ._verifier import Verifier as Verifier
