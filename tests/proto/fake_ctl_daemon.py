#!/usr/bin/env python3
"""A stand-in for xmppd's control socket (shared/ctl.h), for xmpptop's
tests: greets with "xmppd-ctl 2 VERSION", answers sessions, status,
subscribe, kick, disable and roster-show with typed columns (protocol
version 2), and pushes events to subscribers (counters every second,
session-down and log on a kick or disable).

    fake_ctl_daemon.py SOCKET [--no-subscribe] [--no-kick]

Importable: FakeDaemon(path, ...).start() / .stop(), SESSIONS, COUNTERS.
"""

import argparse
import os
import socket
import sys
import threading
import time

VERSION = '0.1.0-fake'
PROTOCOL = '2'

# sid jid ip tls cipher client show status priority since idle in out
# sm sm_unacked csi auth
COLS = ['sid:int', 'jid', 'ip', 'tls', 'cipher', 'client', 'show', 'status',
        'priority:int', 'since:time', 'idle:int', 'stanzas_in:int',
        'stanzas_out:int', 'sm', 'sm_unacked:int', 'csi', 'auth']
SESSIONS = [
    ['7', 'alice@example.org/laptop', '192.0.2.10', 'TLSv1.3',
     'TLS_AES_256_GCM_SHA384', 'Gajim', 'available', 'at work', '5',
     '1714550400.250', '12', '120', '340', 'off', '0', 'active',
     'SASL1 SCRAM-SHA-256-PLUS'],                  # 2024-05-01T08:00:00Z
    ['9', 'bob@example.org/phone', '198.51.100.7', 'TLSv1.2',
     'ECDHE-RSA-AES128-GCM-SHA256', 'Conversations', 'away',
     'back soon', '0', '1714548600.000', '600', '15', '22', 'waiting',
     '3', 'inactive', 'SASL2 HT-SHA-256-EXPR'],   # 07:30
    ['12', 'carol@example.org/desk', '2001:db8::1', 'TLSv1.3',
     'TLS_AES_128_GCM_SHA256', '', 'dnd', '', '-1',
     '1714554900.500', '3', '900', '40', 'resumable', '0', 'active',
     'SASL1 PLAIN'],                               # 09:15
]
# uptime sessions users logins/min in/s out/s bytes-in/s bytes-out/s
# offline rss-kb store-queue commit-ms
COUNTERS = ['3725', '3', '3', '2', '4.5', '6', '1024', '2048', '1',
            '20480', '0', '1.5']
ROSTER_COLS = ['jid', 'name', 'subscription', 'ask', 'pending_in:bool',
               'groups:list', 'presence']
ROSTER = {
    'alice@example.org': [['bob@example.org', 'Bob', 'both', '', 'no',
                           'Friends\x1fWork', 'away']],
}


def enc(s):
    s = str(s)
    if s == '':
        return '%-'
    out = []
    for b in s.encode():
        if b <= 0x20 or b == 0x7F or b == 0x25:
            out.append('%%%02X' % b)
        else:
            out.append(chr(b))
    return ''.join(out)


def dec(f):
    if f == '%-':
        return ''
    raw = f.encode()
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == 0x25:
            out.append(int(raw[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode()


def line(*fields):
    return (' '.join(enc(f) for f in fields) + '\n').encode()


class FakeDaemon:
    def __init__(self, path, subscribe=True, kick=True, sessions=None,
                 counters=None):
        self.path = str(path)
        self.subscribe = subscribe
        self.kick = kick
        self.sessions = [list(s) for s in (sessions or SESSIONS)]
        self.counters = list(counters or COUNTERS)
        self.lock = threading.Lock()
        self.subscribers = []
        self.requests = []
        self.running = False

    def start(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(16)
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._tick, daemon=True).start()
        return self

    def stop(self):
        self.running = False
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            for c in self.subscribers:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                    c.close()
                except OSError:
                    pass
            self.subscribers = []
        if os.path.exists(self.path):
            os.unlink(self.path)

    def push(self, *fields):
        """Send '* event FIELDS...' to every subscriber."""
        data = b'* event ' + line(*fields)
        with self.lock:
            for c in list(self.subscribers):
                try:
                    c.sendall(data)
                except OSError:
                    self.subscribers.remove(c)

    def _tick(self):
        while self.running:
            time.sleep(1)
            self.push('counters', *self.counters)

    def _accept(self):
        while self.running:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _send(self, c, data):
        with self.lock:
            c.sendall(data)

    def _serve(self, c):
        f = c.makefile('rb')
        try:
            self._send(c, line('xmppd-ctl', PROTOCOL, VERSION))
            hello = f.readline().decode().split()
            if hello[:2] != ['hello', PROTOCOL]:
                self._send(c, line('0', 'err', 'usage', 'hello expected'))
                return
            for raw in f:
                fields = [dec(x) for x in raw.decode().rstrip('\n').split(' ')]
                self.requests.append(fields[1:])
                self._request(c, fields[0], fields[1:])
        except (OSError, ValueError, IndexError):
            pass
        finally:
            with self.lock:
                if c in self.subscribers:
                    self.subscribers.remove(c)
            c.close()

    def _request(self, c, rid, args):
        cmd = args[0] if args else ''
        if cmd == 'subscribe' and self.subscribe:
            with self.lock:
                c.sendall(line(rid, 'ok'))
                self.subscribers.append(c)
                c.sendall(b'* event ' + line('counters', *self.counters))
        elif cmd == 'sessions':
            out = line(rid, 'cols', *COLS)
            for s in self.sessions:
                out += line(rid, 'row', *s)
            self._send(c, out + line(rid, 'ok'))
        elif cmd == 'status':
            rows = [('version', VERSION),
                    ('uptime:int', self.counters[0]),
                    ('hosts:list', 'example.org'),
                    ('sessions:int', str(len(self.sessions))),
                    ('users-online:int', self.counters[2]),
                    ('storage-queue:int', self.counters[10]),
                    ('storage-commits:int', '10'),
                    ('last-commit-ms:num', self.counters[11]),
                    ('pid:int', '1')]
            out = line(rid, 'cols', 'key', 'value')
            for k, v in rows:
                out += line(rid, 'row', k, v)
            self._send(c, out + line(rid, 'ok'))
        elif cmd == 'kick' and self.kick and len(args) >= 2:
            victim = [s for s in self.sessions if s[1] == args[1]]
            if not victim:
                self._send(c, line(rid, 'err', 'not-found', 'no such session'))
                return
            self.sessions.remove(victim[0])
            self._send(c, line(rid, 'ok'))
            reason = args[2] if len(args) > 2 else ''
            self.push('session-down', victim[0][0], victim[0][1], reason)
            self.push('log', 'info', 'kicked %s: %s' % (victim[0][1], reason))
        elif cmd == 'disable' and len(args) >= 2:
            gone = [s for s in self.sessions
                    if s[1].split('/')[0] == args[1]]
            for s in gone:
                self.sessions.remove(s)
            self._send(c, line(rid, 'ok', str(len(gone)), args[1]))
            for s in gone:
                self.push('session-down', s[0], s[1], 'disabled')
        elif cmd == 'roster-show' and len(args) >= 2:
            out = line(rid, 'cols', *ROSTER_COLS)
            for r in ROSTER.get(args[1], []):
                out += line(rid, 'row', *r)
            self._send(c, out + line(rid, 'ok'))
        else:
            self._send(c, line(rid, 'err', 'unknown-command',
                               'unknown command'))


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('socket')
    p.add_argument('--no-subscribe', action='store_true')
    p.add_argument('--no-kick', action='store_true')
    a = p.parse_args()
    d = FakeDaemon(a.socket, subscribe=not a.no_subscribe,
                   kick=not a.no_kick).start()
    print('listening on', a.socket, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        d.stop()


if __name__ == '__main__':
    sys.exit(main())
