"""The ways into the daemon: lines and connections over a dispatcher they are handed.

stdio       one client on stdin/stdout (``daemon_cmd``, ssh): reader and writer threads
unix_socket the listening socket every editor of this user shares: connections (bounded
            outboxes), fan-out, idle exit
session     what both share per connection: answering a line, encoding a message safely
paths       where the socket lives, and a private directory made without following symlinks
peer        who is on the other end of a connection (uid), refused unless it is us
lock        the life lock: one daemon per socket path, decided by the kernel
client      connect, or start a detached daemon and connect (CLI and tests)
endpoint    the CLI's switch between the shared daemon and a service built in-process
"""
