"""A fake IPFS node: the three Kubo RPC endpoints the IPFS blob store uses, in memory, served
on a loopback port by aiohttp (the ``kubo`` fixture in ``conftest.py``)."""

from __future__ import annotations

import hashlib

from aiohttp import web


class FakeKubo:
    """The three Kubo RPC endpoints the IPFS blob store uses, in memory."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.pinned: set[str] = set()
        self.tamper = False
        app = web.Application()
        app.router.add_post("/api/v0/add", self.add)
        app.router.add_post("/api/v0/cat", self.cat)
        app.router.add_post("/api/v0/pin/rm", self.pin_rm)
        self.runner = web.AppRunner(app)

    async def add(self, request: web.Request) -> web.Response:
        assert request.query["pin"] == "true"
        reader = await request.multipart()
        part = await reader.next()
        assert part is not None
        data = await part.read()  # type: ignore[union-attr]
        cid = "bafkrei" + hashlib.sha256(data).hexdigest()[:40]
        self.blobs[cid] = bytes(data)
        self.pinned.add(cid)
        return web.json_response({"Name": cid, "Hash": cid, "Size": str(len(data))})

    async def cat(self, request: web.Request) -> web.Response:
        cid = request.query["arg"]
        if cid not in self.blobs:
            return web.json_response(
                {"Message": "block was not found locally (offline)", "Code": 0, "Type": "error"},
                status=500,
            )
        data = self.blobs[cid]
        return web.Response(body=b"X" + data[1:] if self.tamper else data)

    async def pin_rm(self, request: web.Request) -> web.Response:
        cid = request.query["arg"]
        self.pinned.discard(cid)
        self.blobs.pop(cid, None)  # stands in for the node's GC
        return web.json_response({"Pins": [cid]})
