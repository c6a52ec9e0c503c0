"""A client that stops reading cannot hold up the daemon or the other clients."""

from __future__ import annotations

import collections

from socket_client import SharedDaemon, rss_kib, wait_until

PROMPT = "late night rain on the window, soft rhodes chords, vinyl crackle, " * 6  # long: heavy notifications


def test_a_client_that_never_reads_is_dropped_while_another_sees_every_notification(root):
    with SharedDaemon.start(root, "--client-outbox-bytes", "16384") as daemon:
        stuck = daemon.client(read=False)
        with daemon.client() as driver:
            requests = []
            for i in range(200):  # the first 100: 5 jobs and joins; the rest: cache hits
                answer = driver.call("generate", prompt=PROMPT.strip(), duration_sec=5, seed=(i // 20) % 5 if i >= 100 else i // 20)
                assert "result" in answer, answer
                reply = answer["result"]
                requests.append(reply)
                if i % 20 == 19:  # each group: the job first, then joins; cache hits for a later group
                    driver.wait_terminal(reply["track_id"])
                if i == 19:
                    baseline_kib = rss_kib(daemon.proc.pid)
            jobs = {r["track_id"] for r in requests}
            assert len(jobs) == 5  # 5 seeds: made once each, then joined or served from the cache
            cached = sum(r["status"] == "cached" for r in requests)
            wait_until(lambda: len(driver.notifications("generation_complete")) >= len(jobs) + cached, 30,
                       "a completion for every job and every cache hit")
            completes = collections.Counter(n["track_id"] for n in driver.notifications("generation_complete"))
            started = collections.Counter(n["track_id"] for n in driver.notifications("generation_started"))
            assert started == {track: 1 for track in jobs}  # every job's start, once each
            assert sum(completes.values()) == len(jobs) + cached  # every job's end, and one per cache hit
            assert {n["track_id"] for n in driver.notifications("generation_progress")} == jobs

            assert "bytes behind and not reading; disconnecting it" in daemon.log()
            wait_until(lambda: driver.call("daemon_info")["result"]["clients"] == 1, 10, "the stuck client to be gone")
            assert rss_kib(daemon.proc.pid) - baseline_kib < 64 * 1024
        stuck.close()


def test_a_client_that_sends_without_reading_is_paused_not_buffered(daemon):
    import threading
    import time

    flooder = daemon.client(read=False)
    baseline_kib = rss_kib(daemon.proc.pid)
    line = b'{"jsonrpc":"2.0","id":1,"method":"get_backends"}\n' * 1000  # ~1 MB of replies per 50 KB sent
    sent = [0]

    def flood() -> None:
        try:
            for _ in range(2000):  # 100 MB of requests, 2 GB of replies nobody reads
                flooder.sock.sendall(line)
                sent[0] += 1
        except OSError:
            pass

    threading.Thread(target=flood, daemon=True).start()
    last, stalled_since = -1, time.monotonic()
    while sent[0] < 2000 and time.monotonic() - stalled_since < 3.0:  # until the daemon stops reading it
        if sent[0] != last:
            last, stalled_since = sent[0], time.monotonic()
        time.sleep(0.1)
    assert sent[0] < 2000, "the daemon read everything a non-reading client sent"
    assert rss_kib(daemon.proc.pid) - baseline_kib < 64 * 1024
    with daemon.client() as other:  # meanwhile everyone else is served
        assert other.call("ping")["result"]["status"] == "ok"
        assert other.call("daemon_info")["result"]["clients"] == 2  # throttled, not dropped
    assert "disconnecting it" not in daemon.log()
    flooder.close()
