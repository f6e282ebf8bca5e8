from ._client import (
    ClientConnection as ClientConnection,
    ClientResponse as ClientResponse,
    HttpPool as HttpPool,
)
from ._exchange import ServerExchange as ServerExchange
from ._server import HttpServer as HttpServer
from ._settings import (
    HttpClientSettings as HttpClientSettings,
    HttpServerSettings as HttpServerSettings,
)
