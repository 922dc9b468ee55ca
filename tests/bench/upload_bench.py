#!/usr/bin/python3
"""Benchmark: XEP-0363 HTTP file upload over HTTPS on loopback (issue 17).

Logs in one account over c2s (STARTTLS, SCRAM-SHA-256), asks the upload
service for N slots (pipelined iqs), then PUTs N files of SIZE bytes in
parallel (one thread and one HTTPS connection per file: TCP, TLS 1.3
handshake, the PUT, the 201) and then GETs them back in parallel, checking
each status, Content-Length and every byte (each file starts with its own
index, so a mix-up shows).  For each phase it prints the wall time (first
connect to last response), the throughput in MiB/s and the server's CPU
time (utime + stime of all its threads, /proc/PID/stat, clock ticks)
per MiB moved.

  upload_bench.py --c2s-port P --https-port H --pid SERVERPID
                  [--user U --password PW --domain D] [-n 100]
                  [--size 10485760] [--while-pid PID --purge XMPPCTL SOCK]
                  [--csv FILE --label L]

--while-pid: after the first round, do more rounds (new slots, PUTs, GETs;
the files of the round before purged with `xmppctl upload purge JID`)
while process PID lives, so that a concurrent chat run (xmppbench chat
--rate) sees uploads for its whole length; the figures printed per phase
are the first round's, then the totals over all rounds.

Exits non-zero if a slot, PUT or GET failed or a byte differed.
"""

import argparse
import http.client
import os
import resource
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'tests' / 'proto'))

import xmpp_raw as X  # noqa: E402

NS_UPLOAD = 'urn:xmpp:http:upload:0'
MIB = 1024 * 1024
TICK = os.sysconf('SC_CLK_TCK')


def cpu_ticks(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return int(fields[11]) + int(fields[12])


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def request_slots(c, domain, n, size, rnd):
    service = 'upload.' + domain
    for i in range(n):
        c.send("<iq type='get' id='s%d' to='%s'><request xmlns='%s' "
               "filename='f%d-%d.bin' size='%d' "
               "content-type='application/octet-stream'/></iq>"
               % (i, service, NS_UPLOAD, rnd, i, size))
    slots = {}
    while len(slots) < n:
        el = c.next_element()
        if el.tag != X.q(X.NS_CLIENT, 'iq'):
            continue
        iq_id = el.get('id') or ''
        if not iq_id.startswith('s'):
            continue
        s = el.find(X.q(NS_UPLOAD, 'slot'))
        if el.get('type') != 'result' or s is None:
            raise SystemExit('slot request %s refused: %s'
                             % (iq_id, X.tostr(el)))
        slots[int(iq_id[1:])] = (s.find(X.q(NS_UPLOAD, 'put')).get('url'),
                                 s.find(X.q(NS_UPLOAD, 'get')).get('url'))
    return [slots[i] for i in range(n)]


def body_of(base, i):
    # The file's index in its first 8 bytes, the rest shared.
    return i.to_bytes(8, 'big') + base[8:]


def run_phase(method, urls, port, base, ctx, host):
    """N requests in parallel, one thread and connection each.  Returns
    (elapsed s, errors list)."""
    errors = []
    lock = threading.Lock()
    start = threading.Barrier(len(urls) + 1)

    def one(i, url):
        u = urllib.parse.urlsplit(url)
        path = u.path + ('?' + u.query if u.query else '')
        start.wait()
        try:
            conn = http.client.HTTPSConnection('127.0.0.1', port,
                                               context=ctx, timeout=300)
            h = {'Host': host}
            data = None
            if method == 'PUT':
                data = body_of(base, i)
                h['Content-Type'] = 'application/octet-stream'
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            got = r.read()
            conn.close()
            if method == 'PUT':
                if r.status != 201:
                    raise RuntimeError('PUT %d: %d %r' % (i, r.status,
                                                          got[:200]))
            else:
                if r.status != 200:
                    raise RuntimeError('GET %d: %d' % (i, r.status))
                if r.getheader('Content-Length') != str(len(base)):
                    raise RuntimeError('GET %d: Content-Length %s'
                                       % (i, r.getheader('Content-Length')))
                if len(got) != len(base) or got != body_of(base, i):
                    raise RuntimeError('GET %d: %d bytes, content differs'
                                       % (i, len(got)))
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append(str(e))

    threads = [threading.Thread(target=one, args=(i, url), daemon=True)
               for i, url in enumerate(urls)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--c2s-port', type=int, required=True)
    ap.add_argument('--https-port', type=int, required=True)
    ap.add_argument('--pid', type=int, required=True)
    ap.add_argument('--domain', default='localhost')
    ap.add_argument('--user', default='upload0')
    ap.add_argument('--password', default='pwupload0')
    ap.add_argument('-n', type=int, default=100)
    ap.add_argument('--size', type=int, default=10 * MIB)
    ap.add_argument('--while-pid', type=int)
    ap.add_argument('--purge', nargs=2, metavar=('XMPPCTL', 'SOCKET'))
    ap.add_argument('--csv')
    ap.add_argument('--label', default='xmppd/upload')
    a = ap.parse_args()

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    host = '%s:%d' % (a.domain, a.https_port)
    base = os.urandom(a.size)
    jid = '%s@%s' % (a.user, a.domain)
    c = X.login(a.c2s_port, a.user, a.password, tls='starttls',
                mechanism='SCRAM-SHA-256')
    c.timeout = 60
    mib = a.n * a.size / MIB
    totals = {'PUT': [0.0, 0, 0], 'GET': [0.0, 0, 0]}  # s, ticks, rounds
    failed = 0
    rnd = 0
    rows = []
    while True:
        t = time.perf_counter()
        slots = request_slots(c, a.domain, a.n, a.size, rnd)
        slot_ms = (time.perf_counter() - t) * 1000
        if rnd == 0:
            print('upload: %d slots in %.1f ms (one account, pipelined)'
                  % (a.n, slot_ms))
        for method, urls in (('PUT', [p for p, _ in slots]),
                             ('GET', [g for _, g in slots])):
            c0 = cpu_ticks(a.pid)
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            elapsed, errors = run_phase(method, urls, a.https_port, base,
                                        ctx, host)
            ticks = cpu_ticks(a.pid) - c0
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            client = (r1.ru_utime + r1.ru_stime - r0.ru_utime -
                      r0.ru_stime) / elapsed
            failed += len(errors)
            for e in errors[:3]:
                print('upload: ' + e, file=sys.stderr)
            tot = totals[method]
            tot[0] += elapsed
            tot[1] += ticks
            tot[2] += 1
            cpu_ms = ticks * 1000.0 / TICK
            if rnd == 0:
                print('upload: %s n=%d size=%d failed=%d elapsed=%.3fs '
                      'rate=%.1fMiB/s server_cpu=%.0fms '
                      'server_cpu_per_MiB=%.2fms server_cpu_use=%.0f%% '
                      'client_cpu_use=%.0f%%'
                      % (method.lower(), a.n, a.size, len(errors), elapsed,
                         mib / elapsed, cpu_ms, cpu_ms / mib,
                         100 * cpu_ms / 1000 / elapsed, 100 * client))
                rows.append((method.lower(), elapsed, mib / elapsed, cpu_ms,
                             cpu_ms / mib, len(errors)))
        rnd += 1
        if not a.while_pid or not alive(a.while_pid) or failed:
            break
        if a.purge:
            subprocess.run([a.purge[0], '-s', a.purge[1], 'upload', 'purge',
                            jid], check=True, stdout=subprocess.DEVNULL)
    c.send('</stream:stream>')
    c.close()
    if rnd > 1:
        for method in ('PUT', 'GET'):
            s, ticks, k = totals[method]
            cpu_ms = ticks * 1000.0 / TICK
            print('upload: %s over %d rounds: %.1fMiB/s '
                  'server_cpu_per_MiB=%.2fms'
                  % (method.lower(), k, k * mib / s, cpu_ms / (k * mib)))
    if a.csv:
        new = not os.path.exists(a.csv) or os.path.getsize(a.csv) == 0
        with open(a.csv, 'a') as f:
            if new:
                f.write('label,phase,files,size,elapsed_s,mib_per_s,'
                        'server_cpu_ms,server_cpu_ms_per_mib,failed,'
                        'rounds\n')
            for r in rows:
                f.write('%s,%s,%d,%d,%.3f,%.1f,%.0f,%.3f,%d,%d\n'
                        % (a.label, r[0], a.n, a.size, r[1], r[2], r[3],
                           r[4], r[5], rnd))
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
