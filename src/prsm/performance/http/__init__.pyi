from ._client import HttpPool as HttpPool
