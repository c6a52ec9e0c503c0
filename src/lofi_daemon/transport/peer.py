"""The uid of the process on the other end of a unix socket, from the kernel."""

from __future__ import annotations

import socket
import struct
import sys

# macOS: getsockopt(SOL_LOCAL, LOCAL_PEERCRED) fills a struct xucred, which is what
# getpeereid(3) reads: u_int cr_version, uid_t cr_uid, short cr_ngroups, gid_t cr_groups[16].
_SOL_LOCAL = 0
_LOCAL_PEERCRED = 0x001
_XUCRED_SIZE = 76  # with the padding after cr_ngroups
_XUCRED_HEAD = struct.Struct("=II")  # cr_version, cr_uid: all we read


def peer_uid(sock: socket.socket) -> int | None:
    """The peer's uid, or None where the platform offers no way to ask (then refuse)."""
    if hasattr(socket, "SO_PEERCRED"):  # Linux: struct ucred {pid, uid, gid}
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        return uid
    if sys.platform == "darwin":
        raw = sock.getsockopt(_SOL_LOCAL, _LOCAL_PEERCRED, _XUCRED_SIZE)
        return _XUCRED_HEAD.unpack_from(raw)[1]
    return None


def peer_pid(sock: socket.socket) -> int | None:
    if hasattr(socket, "SO_PEERCRED"):
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", creds)[0]
    return None
