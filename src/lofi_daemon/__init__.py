"""lofi.nvim daemon: local AI music over line-delimited JSON-RPC."""

__version__ = "0.1.0"
PROTOCOL_VERSION = 1
