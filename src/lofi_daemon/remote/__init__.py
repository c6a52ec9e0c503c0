"""The remote generator: generation on another machine (a GPU box over ssh), tracks kept here.

    connection  the child process (``generator`` command) and our JSON-RPC over its pipes
    generator   a job's work when its backend goes remote: forward, relay progress, fetch
    fetch       ``read_track`` in bounded chunks, verified, committed to the local library
    machine     what a daemon reports about its own machine for the other side (GPU names)

See docs/remote.md.
"""
