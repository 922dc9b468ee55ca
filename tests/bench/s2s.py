#!/usr/bin/python3
"""Benchmark: server-to-server (issue 18).  Loopback only; builds nothing
(make bench-s2s builds first).

chat     Two daemons, a.test and b.test, finding each other through a
         throwaway dnsmasq (SRV records) and authenticating with SASL
         EXTERNAL (certificates from a test CA).  xmppbench's chat mode
         with P pairs: in the c2s runs both users of a pair are a.test's;
         in the s2s runs user 2k is a.test's and user 2k+1 b.test's, so
         every message crosses the stream between the servers.  The
         servers' CPU time (both, in the s2s runs) per delivered message,
         rounds interleaved, medians; the target is s2s <= 1.5x c2s.
streams  One daemon (a.test) opens outgoing streams to N distinct
         domains (d0.test .. dN-1.test, all served by a second daemon
         whose certificate names *.test), one XEP-0199 ping from a client
         to each domain at once: the time until every answer is back
         (DNS SRV + A lookups, TCP, TLS, SASL EXTERNAL, the ping), and
         a.test's resident memory per outgoing stream, read after a
         settle against the same reading before the pings.

The servers run on core 0 and the load generator on core 1 when there
are two cores (the c2s and s2s runs alike).

  BENCH_S2S_PAIRS (50), BENCH_S2S_MESSAGES (50000), BENCH_S2S_WINDOW (16),
  BENCH_S2S_ARCHIVE ("off on": the chat runs without the message archive,
  then with it, each on fresh daemons),
  BENCH_S2S_ROUNDS (3), BENCH_S2S_STREAMS (1000, 0: not run),
  BENCH_S2S_ONLY=chat|streams, BENCH_SETTLE (5), BENCH_TIMEOUT (300),
  XMPPD_BIN, XMPPCTL_BIN, XMPPBENCH_BIN

Prints the runs and a summary; exits non-zero if a run failed.
"""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'tests' / 'proto'))
os.environ.setdefault('XMPPD_BIN', str(ROOT / 'build' / 'xmppd'))
os.environ.setdefault('XMPPCTL_BIN', str(ROOT / 'build' / 'xmppctl'))
BENCH = os.environ.get('XMPPBENCH_BIN',
                       str(ROOT / 'build' / 'tests' / 'bench' / 'xmppbench'))

import test_s2s  # noqa: E402
from conftest import free_ports  # noqa: E402
from xmpp_raw import tostr  # noqa: E402

PAIRS = int(os.environ.get('BENCH_S2S_PAIRS', '50'))
MESSAGES = int(os.environ.get('BENCH_S2S_MESSAGES', '50000'))
WINDOW = int(os.environ.get('BENCH_S2S_WINDOW', '16'))
ROUNDS = int(os.environ.get('BENCH_S2S_ROUNDS', '3'))
STREAMS = int(os.environ.get('BENCH_S2S_STREAMS', '1000'))
ARCHIVE = os.environ.get('BENCH_S2S_ARCHIVE', 'off on').split()
ONLY = os.environ.get('BENCH_S2S_ONLY', '')
SETTLE = float(os.environ.get('BENCH_SETTLE', '5'))
TIMEOUT = float(os.environ.get('BENCH_TIMEOUT', '300'))
TWO_CORES = (os.cpu_count() or 1) >= 2


class BenchFed(test_s2s.FedServer):
    """A federating daemon with every limit off, warnings only, and the
    extra host blocks given (domains sharing its certificate)."""

    def __init__(self, certificate, domain, s2s_port, dns_port, users,
                 extra='', more_hosts=()):
        super().__init__(certificate, domain, s2s_port, dns_port,
                         extra=extra)
        self.users = users
        self.more_hosts = more_hosts

    def config_text(self):
        text = super().config_text().replace('log-level debug',
                                             'log-level warn')
        limits = ('limits {\n\tconnections-per-ip 0\n'
                  '\tpreauth-connections-per-ip 0\n\tmax-connections 0\n'
                  '\tstanzas-per-second 0\n\tbytes-per-second 0\n'
                  '\ts2s-stanzas-per-second 0\n\ts2s-bytes-per-second 0\n'
                  '\tstanza-size 262144\n}\n')
        hosts = ''.join('host "%s" {\n\tcertificate "%s"\n\tkey "%s"\n}\n'
                        % (h, self.cert, self.key) for h in self.more_hosts)
        return limits + text + hosts


def pin(pid, core):
    """Every thread of pid on core (when there are two cores)."""
    if not TWO_CORES:
        return
    for task in Path('/proc/%d/task' % pid).iterdir():
        try:
            os.sched_setaffinity(int(task.name), {core})
        except OSError:
            pass


def rss_kib(pid):
    for line in Path('/proc/%d/status' % pid).read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1])
    return -1


def cert(d, domain, ca):
    """Paths of a key and certificate for domain (*.test: every test
    domain) signed by ca."""
    c, k = test_s2s.make_cert(d, domain, ca)
    return str(c), str(k)


def start(srv):
    srv.start()
    pin(srv.proc.pid, 0)
    return srv


def xmppbench(*args):
    argv = ([] if not TWO_CORES else ['taskset', '-c', '1']) + \
        [BENCH] + [str(a) for a in args]
    r = subprocess.run(argv, capture_output=True, text=True,
                       timeout=TIMEOUT + 60)
    out = r.stdout.strip().splitlines()
    line = out[-1] if out else ''
    print(line or r.stderr.strip()[-500:], flush=True)
    if r.returncode != 0:
        raise RuntimeError('xmppbench failed: %s' % r.stderr.strip()[-500:])
    return line


def per_message_us(line):
    m = re.search(r'server_cpu=([\d.]+)s\(([\d.]+)ms/1000msg\)', line)
    if m is None:
        raise RuntimeError('no server CPU in: ' + line)
    return float(m.group(2))    # ms per 1000 = µs per message


def rate(line):
    m = re.search(r' rate=([\d.]+)/s', line)
    return float(m.group(1)) if m else 0.0


def chat(tmp, archive):
    """The chat runs with the message archive (XEP-0313) on or off."""
    ca = test_s2s.make_ca(tmp)
    users = 2 * PAIRS
    pa, pb = free_ports(2)
    dns = test_s2s.Dns(test_s2s.records({'a.test': pa, 'b.test': pb}))
    extra = '\ntls-ca-file "%s"\ns2s-secure-auth on\narchive %s' % (
        ca[0], archive)
    a = b = None
    try:
        a = start(BenchFed(cert(tmp, 'a.test', ca),
                           'a.test', pa, dns.port,
                           {'user%d@a.test' % i: 'pw%d' % i
                            for i in range(users)}, extra=extra))
        b = start(BenchFed(cert(tmp, 'b.test', ca),
                           'b.test', pb, dns.port,
                           {'user%d@b.test' % i: 'pw%d' % i
                            for i in range(1, users, 2)}, extra=extra))
        base = ['-h', '127.0.0.1', '-p', a.c2s_port, '-d', 'a.test',
                '--pairs', PAIRS, '-T', TIMEOUT]
        common = base + ['-n', MESSAGES, '--window', WINDOW, '--pid',
                         a.proc.pid]
        # Warm-up (not counted): one pair opens the stream between the
        # servers (what waits for it is bounded: 500 stanzas), then
        # every account's pages are brought in.
        peer = ['--peer-port', b.c2s_port, '--peer-domain', 'b.test']
        xmppbench('chat', *base[:6], '--pairs', 1, '-n', 20, *peer)
        xmppbench('chat', *base, '-n', 2000, *peer)
        c2s, s2s, rates = [], [], {'c2s': [], 's2s': []}
        for r in range(ROUNDS):
            print('-- round %d: c2s (a.test to a.test)' % (r + 1))
            line = xmppbench('chat', *common, '--label', 'xmppd-c2s')
            c2s.append(per_message_us(line))
            rates['c2s'].append(rate(line))
            print('-- round %d: s2s (a.test to b.test and back)' % (r + 1))
            line = xmppbench('chat', *common, *peer, '--peer-pid',
                             b.proc.pid, '--label', 'xmppd-s2s')
            s2s.append(per_message_us(line))
            rates['s2s'].append(rate(line))
        mc, ms = statistics.median(c2s), statistics.median(s2s)
        print()
        print('== s2s chat, archive %s (issue 18 target: s2s <= 1.5x c2s, '
              'both servers summed)' % archive)
        print('c2s: %.2f us of server CPU per message (median of %d; '
              '%.0f msg/s)' % (mc, ROUNDS, statistics.median(rates['c2s'])))
        print('s2s: %.2f us of server CPU per message, both servers '
              '(median of %d; %.0f msg/s)' % (ms, ROUNDS,
                                              statistics.median(rates['s2s'])))
        print('ratio s2s/c2s: %.2f' % (ms / mc))
    finally:
        for s in (a, b):
            if s is not None:
                s.stop()
        dns.stop()


def read_until(sock, buf, pred, deadline):
    while not pred(buf):
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = sock.recv(65536)
        if not data:
            raise RuntimeError('the server closed the stream')
        buf += data
    return buf


def streams(tmp):
    ca = test_s2s.make_ca(tmp)
    pa, pr = free_ports(2)
    domains = ['d%d.test' % i for i in range(STREAMS)]
    ports = {'a.test': pa}
    ports.update({d: pr for d in domains})
    dns = test_s2s.Dns(test_s2s.records(ports))
    extra = '\ntls-ca-file "%s"' % ca[0]
    a = r = None
    try:
        a = start(BenchFed(cert(tmp, 'a.test', ca),
                           'a.test', pa, dns.port,
                           {'alice@a.test': 'alice-secret'}, extra=extra))
        r = start(BenchFed(cert(tmp, '*.test', ca),
                           domains[0], pr, dns.port, {}, extra=extra,
                           more_hosts=domains[1:]))
        c = test_s2s.domain_login(a.c2s_port, 'a.test', 'alice')
        time.sleep(SETTLE)
        before = rss_kib(a.proc.pid)
        t0 = time.monotonic()
        c.send(''.join("<iq type='get' id='p%d' to='%s'><ping xmlns="
                       "'urn:xmpp:ping'/></iq>" % (i, d)
                       for i, d in enumerate(domains)))
        got, errors, first = set(), [], None
        deadline = t0 + TIMEOUT
        while len(got) + len(errors) < STREAMS:
            st = c.expect_stanza('iq', timeout=max(1, deadline -
                                                   time.monotonic()))
            if first is None:
                first = time.monotonic() - t0
            if st.get('type') == 'result':
                got.add(st.get('id'))
            else:
                errors.append(tostr(st))
        elapsed = time.monotonic() - t0
        time.sleep(SETTLE)
        after = rss_kib(a.proc.pid)
        rows = json.loads(a.ctl('s2s', '--json').stdout or '[]')
        out = sum(1 for row in rows if row['direction'] == 'out')
        c.close()
        print('streams: %d outgoing streams from a.test to %d domains: '
              '%d answered, %d errors, all in %.2f s (first after %.3f '
              's); a.test RSS %d KiB before, %d KiB after: %.1f KiB per '
              'stream; xmppctl s2s lists %d outgoing'
              % (STREAMS, STREAMS, len(got), len(errors), elapsed, first,
                 before, after, (after - before) / STREAMS, out))
        if errors:
            print('first error: ' + errors[0])
            raise RuntimeError('%d pings failed' % len(errors))
    finally:
        for s in (a, r):
            if s is not None:
                s.stop()
        dns.stop()


def main():
    for f in (os.environ['XMPPD_BIN'], BENCH):
        if not os.access(f, os.X_OK):
            sys.exit('s2s bench: %s not built (make bench-s2s)' % f)
    print('== s2s bench: %s' % ('servers on core 0, load generator on '
                                'core 1' if TWO_CORES else 'not pinned'))
    with tempfile.TemporaryDirectory(prefix='xmppbench-s2s-') as d:
        for archive in ARCHIVE if ONLY in ('', 'chat') else ():
            (Path(d) / archive).mkdir()
            print('== chat with the archive %s' % archive)
            chat(Path(d) / archive, archive)
        if ONLY in ('', 'streams') and STREAMS > 0:
            (Path(d) / 's').mkdir()
            streams(Path(d) / 's')


if __name__ == '__main__':
    try:
        main()
    except Exception as e:  # noqa: BLE001 -- a run failed: say so, exit 1
        sys.exit('s2s bench: %s' % e)
