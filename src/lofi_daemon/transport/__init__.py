"""The unix-socket transport: one daemon per user, shared by every editor and the CLI.

paths   where the socket lives, and a private directory made without following symlinks
peer    who is on the other end of a connection (uid), refused unless it is us
lock    the life lock: one daemon per socket path, decided by the kernel
session what a request knows about the connection it came from (and line answering)
server  the listening socket, its connections (bounded outboxes), fan-out and idle exit
client  connect, or start a detached daemon and connect (CLI and tests)
"""
