"""JSON-RPC 2.0 transport and dispatch."""
