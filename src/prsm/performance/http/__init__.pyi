from ._client import HttpPool as HttpPool
from ._client_connection import (
    ClientConnection as ClientConnection,
    ClientResponse as ClientResponse,
)
from ._exchange import ServerExchange as ServerExchange
from ._server import HttpServer as HttpServer
from ._settings import (
    HttpClientSettings as HttpClientSettings,
    HttpServerSettings as HttpServerSettings,
)
