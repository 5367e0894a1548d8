"""The Model Context Protocol, both ways.

* :mod:`.client` — every configured MCP server's tools become the assistant's tools
  (``[[mcp.servers]]``): name-spaced, risk from the tools' annotations, fast-path templates from
  the config, reconnected with backoff.
* :mod:`.server` — the assistant as an MCP server (``assistant mcp`` over stdio,
  ``assistant serve --mcp`` over Streamable HTTP): its tools, an ``ask`` tool that runs a request
  through the whole router, and the home as resources.

Both use the official Python SDK (``mcp`` 2.x on the package index).
"""
