from ._cache import (
    SemanticCache as SemanticCache,
)
from ._cache import (
    SemanticMatch as SemanticMatch,
)
from ._factory import build_semantic_cache as build_semantic_cache
from ._index import (
    AutoIndex as AutoIndex,
)
from ._index import (
    FlatIndex as FlatIndex,
)
from ._index import (
    HNSWIndex as HNSWIndex,
)
from ._index import (
    VectorIndex as VectorIndex,
)
from ._index_ivf import IVFIndex as IVFIndex
from ._response_cache import SemanticResponseCache as SemanticResponseCache
from ._settings import SemanticSettings as SemanticSettings
from ._store import (
    EntryStore as EntryStore,
)
from ._store import (
    MemoryStore as MemoryStore,
)
from ._store import (
    RedisStore as RedisStore,
)
from ._store import (
    SQLiteStore as SQLiteStore,
)
from ._verifier import Verifier as Verifier
