"""The byte rate limit (issue 13, item 4): limits bytes-per-second and
byte-burst, a token bucket of bytes per stream beside the stanza bucket.
20 KiB messages sent at 5 MB/s are read no faster than the limit, all
arrive in order, the daemon's memory stays bounded and another pair's
messages keep their latency; the limit is on by default and 0 turns it
off.  Like the stanza rate, it pauses reading (backpressure): nothing is
dropped."""

import threading
import time

from test_amplification import rss, sanitized
from test_limits import (body, flood_sessions, log_lines, receive_flood,
                         wait_log)

MSG_BODY = 20 * 1024
READ_CHUNK = 16 * 1024          # what one read may take past the bucket
SEND_RATE = 5e6                 # bytes a second the flooder aims at


def flood_message(i):
    """Message i to bob/sink: a 20 KiB body that says which one it is."""
    head = 'm%04d ' % i
    text = head + chr(ord('a') + i % 26) * (MSG_BODY - len(head))
    return ("<message to='bob@localhost/sink' type='chat' id='m%d'>"
            "<body>%s</body></message>" % (i, text)).encode()


def paced_sender(c, msgs, stop):
    """Send msgs at SEND_RATE (or as fast as the socket takes them) in a
    thread: the daemon not reading blocks sendall, which is the point."""
    def run():
        t0 = time.monotonic()
        sent = 0
        for m in msgs:
            if stop.is_set():
                return
            c.sock.sendall(m)
            sent += len(m)
            ahead = t0 + sent / SEND_RATE - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def receive_all(srv, sink, n, probe=None, limit=30.0):
    """receive_flood, as [(id, body, arrival time)], and the daemon's
    largest RSS meanwhile."""
    peak = [rss(srv.proc.pid)]
    got, latencies = receive_flood(
        sink, n, probe, limit,
        each=lambda: peak.append(max(peak[-1], rss(srv.proc.pid))))
    return ([(el.get('id'), body(el), t) for el, t in got], latencies,
            peak[-1])


def check_in_order(got, n):
    ids = [g[0] for g in got]
    assert ids == ['m%d' % k for k in range(n)], (
        'lost or reordered: %d of %d arrived, first wrong at %s'
        % (len(ids), n, next((k for k, x in enumerate(ids)
                              if x != 'm%d' % k), None)))
    for k, (_, text, _) in enumerate(got):
        want = flood_message(k).decode().split('<body>')[1].split('<')[0]
        assert text == want, 'message m%d altered' % k


def test_large_messages_no_faster_than_the_byte_rate(server_factory):
    """bytes-per-second 256K, byte-burst 64K: 60 messages of 20 KiB (1.2
    MiB) sent at 5 MB/s arrive complete and in order, but at no moment
    has the daemon taken more than the burst, one read and the rate
    times the time since the flood began (so the whole takes at least
    (1.2 MiB - 80 KiB) / 256 KiB/s, 4.4 s, against 0.25 s unlimited);
    the stream is paused, not closed, with a log line; the daemon's RSS
    grows by less than 8 MiB; and carol's messages to dave meanwhile
    arrive within 0.5 s."""
    rate, burst, n = 256 * 1024, 64 * 1024, 60
    srv = server_factory(limits={'bytes-per-second': '256K',
                                 'byte-burst': '64K'})
    flooder, sink, carol, dave = flood_sessions(srv)
    msgs = [flood_message(i) for i in range(n)]
    stop = threading.Event()
    try:
        time.sleep(burst / rate)        # the logins' bytes are paid back
        rss0 = rss(srv.proc.pid)
        t0 = time.monotonic()
        sender = paced_sender(flooder, msgs, stop)
        got, latencies, peak = receive_all(srv, sink, n, (carol, dave))
        sender.join(5)
        check_in_order(got, n)
        sent = 0
        for k, (_, _, t) in enumerate(got):
            sent += len(msgs[k])
            allowed = burst + READ_CHUNK + 1.05 * rate * (t - t0)
            assert sent <= allowed, (
                'm%d: %d bytes taken %.2f s into the flood, more than the '
                'limit allows (%d)' % (k, sent, t - t0, allowed))
        took = got[-1][2] - t0
        assert took >= (sent - burst - READ_CHUNK) / rate, took
        assert took < 2 * sent / rate, 'slower than the limit: %.1f s' % took
        assert max(latencies) < 0.5, (
            'other users slowed down: %s' % ['%.3f' % x for x in latencies])
        if not sanitized():
            assert peak - rss0 < 8 * 1024 * 1024, (
                'RSS grew by %d KiB' % ((peak - rss0) // 1024))
        assert wait_log(srv, r'^.*c2s \d+ 127\.0\.0\.1:\d+: over 262144 '
                        r'bytes per second \(burst 65536\): reading paused')
        flooder.message('alice@localhost/flood', 'still here')
        el = flooder.expect_stanza('message', timeout=5)
        assert body(el) == 'still here'
    finally:
        stop.set()
        for c in (flooder, sink, carol, dave):
            c.close()
    srv.assert_serves()


def test_byte_rate_on_by_default(server_factory):
    """Defaults (64 KiB/s, burst 512 KiB): 30 messages of 20 KiB (600
    KiB) in one go pass the burst, so reading pauses (logged) and the
    last arrives no sooner than (600 - 512 - 16) KiB / 64 KiB/s, 1.1 s;
    nothing is lost."""
    srv = server_factory()
    flooder = srv.login('alice@localhost', resource='flood')
    sink = srv.login('bob@localhost', resource='sink')
    n, rate, burst = 30, 64 * 1024, 512 * 1024
    msgs = [flood_message(i) for i in range(n)]
    stop = threading.Event()
    try:
        t0 = time.monotonic()
        sender = paced_sender(flooder, msgs, stop)
        got, _, _ = receive_all(srv, sink, n)
        sender.join(5)
        check_in_order(got, n)
        took = got[-1][2] - t0
        total = sum(len(m) for m in msgs)
        assert took >= 0.9 * (total - burst - READ_CHUNK) / rate, (
            '%d bytes in %.2f s: not limited' % (total, took))
        assert wait_log(srv, r'^.*c2s \d+ 127\.0\.0\.1:\d+: over 65536 '
                        r'bytes per second \(burst 524288\): reading paused')
    finally:
        stop.set()
        flooder.close()
        sink.close()
    srv.assert_serves()


def test_byte_rate_off(server_factory):
    """bytes-per-second 0: 100 messages of 20 KiB (2 MiB) pass within 3 s
    (at the default rate they would take 25 s) and nothing is logged."""
    srv = server_factory(limits={'bytes-per-second': 0})
    flooder = srv.login('alice@localhost', resource='flood')
    sink = srv.login('bob@localhost', resource='sink')
    n = 100
    msgs = [flood_message(i) for i in range(n)]
    stop = threading.Event()
    try:
        t0 = time.monotonic()
        sender = paced_sender(flooder, msgs, stop)
        got, _, _ = receive_all(srv, sink, n, limit=10)
        sender.join(5)
        check_in_order(got, n)
        assert got[-1][2] - t0 < 3.0, got[-1][2] - t0
        assert not log_lines(srv, r'bytes per second')
    finally:
        stop.set()
        flooder.close()
        sink.close()
    srv.assert_serves()
