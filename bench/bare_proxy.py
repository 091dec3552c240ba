"""The smallest Sanic + aiohttp pass-through: the Python limit coo-llm is measured against.

No features: every POST is sent to UPSTREAM + path on one pooled keep-alive session and its
answer is returned as it came. An SSE answer (``text/event-stream``) is relayed as it arrives,
one write per upstream read, as the gateway writes a stream (the frames of one read in one
piece): the Python floor for streams. Usage: python bench/bare_proxy.py UPSTREAM_URL PORT
"""

import sys

import aiohttp
from sanic import Sanic
from sanic.response import raw

app = Sanic("bare_proxy")
app.config.ACCESS_LOG = False
UPSTREAM = sys.argv[1].rstrip("/") if len(sys.argv) > 1 else ""
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bare-proxy"}


@app.before_server_start
async def open_session(app, _loop):
    app.ctx.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


@app.post("/<path:path>")
async def forward(request, path):
    async with app.ctx.session.post(f"{UPSTREAM}/{path}", data=request.body, headers=HEADERS) as upstream:
        if upstream.content_type != "text/event-stream":
            return raw(await upstream.read(), status=upstream.status, content_type=upstream.content_type)
        response = await request.respond(status=upstream.status, content_type="text/event-stream")
        async for piece in upstream.content.iter_any():
            await response.send(piece)
        await response.eof()


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[2]), single_process=True, access_log=False, motd=False)
