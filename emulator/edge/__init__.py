"""The network edge: one port serving HTTP/1.1 (aiohttp) and HTTP/2 (h2), in clear text or TLS."""
