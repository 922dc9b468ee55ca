"""XMPP over WebSocket (RFC 7395 over RFC 6455, issue 17 part 2) and
XEP-0156 host-meta (part 4) against a real daemon with http and https
listeners, driven by a WebSocket client written here on raw sockets
(masked frames, fragments, control frames): the opening handshake and
its refusals (no "xmpp" subprotocol, another version, not an Upgrade, an
Origin not allowed), SCRAM over ws:// and PLAIN over wss:// with the
<open/> restart, bind, messages both ways with a c2s user, ping/pong, a
fragmented message, the close codes for an unmasked frame (1002), a
binary one (1003) and an oversized one (1009), the <close/> handshake,
stream errors sent as <error/> then <close/>, XEP-0198 resumption from
one WebSocket to the next; and host-meta in XRD and JRD."""

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import ssl
import struct
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import Server, free_ports
import xmpp_raw
from xmpp_raw import NS_BIND, NS_CLIENT, NS_SASL, NS_STREAM, q, tostr

NS_FRAMING = 'urn:ietf:params:xml:ns:xmpp-framing'
NS_SM = 'urn:xmpp:sm:3'
NS_STREAM_ERR = 'urn:ietf:params:xml:ns:xmpp-streams'
GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
ORIGIN = 'https://web.example'
WS_URL = 'wss://xmpp.example/xmpp-websocket'
STANZA_SIZE = 65536


class WsServer(Server):
    """A daemon with http and https listeners serving /xmpp-websocket,
    one allowed Origin, and a websocket-url for localhost."""

    def __init__(self, certificate, **kw):
        kw.setdefault('limits', {})
        kw['limits']['stanza-size'] = STANZA_SIZE
        kw.setdefault('host_extra', '\twebsocket-url "%s"' % WS_URL)
        super().__init__(certificate, **kw)
        self.http_port = self.https_port = None

    websocket = 'on'
    trusted_proxy = '127.0.0.2'

    def config_text(self):
        return super().config_text() + '\n'.join([
            'listen http %d address 127.0.0.1' % self.http_port,
            'listen https %d address 127.0.0.1' % self.https_port,
            'websocket %s' % self.websocket,
            'http-trusted-proxy %s' % self.trusted_proxy,
            'websocket-origin "%s"' % ORIGIN, '']) + '\n'

    def start(self, create_users=True):
        self.http_port, self.https_port = free_ports(2)
        return super().start(create_users)


@pytest.fixture(scope='module')
def server(certificate):
    srv = WsServer(certificate).start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    server.assert_serves()


class Closed(AssertionError):
    """The server sent a close frame: .code is its status code."""

    def __init__(self, code):
        super().__init__('WebSocket closed with %s' % code)
        self.code = code


class WsClient:
    """A WebSocket client on a raw socket, speaking RFC 7395: send()
    sends one text message, next_element() parses the next one."""

    def __init__(self, port, tls=False, timeout=5, source='127.0.0.1'):
        s = socket.create_connection(('127.0.0.1', port), timeout=timeout,
                                     source_address=(source, 0))
        if tls:
            ctx = xmpp_raw.client_tls_context()
            ctx.set_alpn_protocols(['http/1.1'])
            s = ctx.wrap_socket(s, server_hostname='localhost')
        self.sock = s
        self.buf = b''
        self.timeout = timeout
        self.status = None
        self.headers = {}

    # -- the opening handshake --

    def handshake(self, protocol='xmpp', version='13', origin=ORIGIN,
                  upgrade=True, key=None, host='localhost', extra=()):
        key = key or base64.b64encode(os.urandom(16)).decode()
        lines = ['GET /xmpp-websocket HTTP/1.1', 'Host: %s' % host]
        if upgrade:
            lines += ['Upgrade: websocket', 'Connection: Upgrade']
        lines.append('Sec-WebSocket-Key: %s' % key)
        if version is not None:
            lines.append('Sec-WebSocket-Version: %s' % version)
        if protocol is not None:
            lines.append('Sec-WebSocket-Protocol: %s' % protocol)
        if origin is not None:
            lines.append('Origin: %s' % origin)
        lines += list(extra)
        self.sock.sendall(('\r\n'.join(lines) + '\r\n\r\n').encode())
        while b'\r\n\r\n' not in self.buf:
            self._recv()
        head, self.buf = self.buf.split(b'\r\n\r\n', 1)
        head = head.decode().split('\r\n')
        self.status = int(head[0].split()[1])
        self.headers = {}
        for line in head[1:]:
            k, v = line.split(':', 1)
            self.headers[k.strip().lower()] = v.strip()
        if self.status != 101:
            n = int(self.headers.get('content-length', '0'))
            while len(self.buf) < n:
                self._recv()
            self.buf = self.buf[n:]
            return self.status
        expected = base64.b64encode(hashlib.sha1(
            (key + GUID).encode()).digest()).decode()
        assert self.headers['sec-websocket-accept'] == expected
        assert self.headers['upgrade'].lower() == 'websocket'
        assert self.headers['sec-websocket-protocol'] == 'xmpp'
        return self.status

    # -- frames --

    def _recv(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError('connection closed')
        self.buf += data

    def send_frame(self, opcode, payload=b'', fin=True, mask=True,
                   length=None):
        if isinstance(payload, str):
            payload = payload.encode()
        n = len(payload) if length is None else length
        head = bytes([(0x80 if fin else 0) | opcode])
        mbit = 0x80 if mask else 0
        if n < 126:
            head += bytes([mbit | n])
        elif n < 65536:
            head += bytes([mbit | 126]) + struct.pack('!H', n)
        else:
            head += bytes([mbit | 127]) + struct.pack('!Q', n)
        if mask:
            key = os.urandom(4)
            head += key
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + payload)

    def read_frame(self, timeout=None):
        """(fin, opcode, payload) of the next frame from the server,
        which must be unmasked."""
        self.sock.settimeout(timeout or self.timeout)
        while True:
            if len(self.buf) >= 2:
                b0, b1 = self.buf[0], self.buf[1]
                assert not b1 & 0x80, 'server frames are not masked'
                n, off = b1 & 0x7f, 2
                if n == 126 and len(self.buf) >= 4:
                    n, off = struct.unpack('!H', self.buf[2:4])[0], 4
                elif n == 127 and len(self.buf) >= 10:
                    n, off = struct.unpack('!Q', self.buf[2:10])[0], 10
                if (b1 & 0x7f) < 126 or off > 2:
                    if len(self.buf) >= off + n:
                        payload = self.buf[off:off + n]
                        self.buf = self.buf[off + n:]
                        return bool(b0 & 0x80), b0 & 0x0f, payload
            self._recv()

    def send(self, text):
        self.send_frame(1, text)

    def next_message(self, timeout=None):
        fin, op, payload = self.read_frame(timeout)
        if op == 8:
            code = struct.unpack('!H', payload[:2])[0] if payload else None
            raise Closed(code)
        assert op == 1 and fin, 'frame %d fin %s' % (op, fin)
        return payload.decode()

    def next_element(self, timeout=None):
        return ET.fromstring(self.next_message(timeout))

    def expect(self, tag, timeout=None):
        el = self.next_element(timeout)
        assert el.tag == tag, 'expected %s, got %s' % (tag, tostr(el))
        return el

    def expect_stanza(self, tag, skip=('presence',)):
        while True:
            el = self.next_element()
            if xmpp_raw.local(el.tag) in skip and el.tag != tag:
                continue
            assert el.tag == tag, 'expected %s, got %s' % (tag, tostr(el))
            return el

    def expect_close(self, code):
        """The server's close frame with code, then EOF."""
        while True:
            try:
                self.next_message()
            except Closed as e:
                assert e.code == code, 'close code %s, not %s' % (e.code,
                                                                   code)
                break
        self.expect_eof()

    def expect_eof(self):
        self.sock.settimeout(self.timeout)
        while True:
            try:
                if not self.sock.recv(4096):
                    return
            except (ConnectionResetError, ssl.SSLError):
                return

    # -- RFC 7395 --

    def open(self, to='localhost'):
        """<open/>; returns the features after the server's <open/>."""
        self.send("<open xmlns='%s' to='%s' version='1.0'/>"
                  % (NS_FRAMING, to))
        op = self.expect(q(NS_FRAMING, 'open'))
        assert op.get('from') == 'localhost' and op.get('version') == '1.0'
        assert op.get('id')
        return self.expect(q(NS_STREAM, 'features'))

    # SASL and bind are xmpp_raw's, over send() and next_element().
    sasl_scram = xmpp_raw.RawClient.sasl_scram
    sasl_plain = xmpp_raw.RawClient.sasl_plain
    bind = xmpp_raw.RawClient.bind

    def close(self):
        self.sock.close()


def ws(server, tls=False, **kw):
    c = WsClient(server.https_port if tls else server.http_port, tls=tls)
    assert c.handshake(**kw) == 101
    return c


def mechanisms(features):
    return xmpp_raw.mechanisms(features)


def login(server, user='alice', password='alice-secret', tls=False,
          resource=None):
    """A bound WebSocket client (SCRAM over ws://, PLAIN over wss://)."""
    c = ws(server, tls=tls)
    f = c.open()
    if tls:
        xmpp_raw.assert_sasl_success(c.sasl_plain(user, password))
    else:
        res = c.sasl_scram(user, password)
        xmpp_raw.assert_sasl_success(res.final)
        assert res.server_signature_ok
    f = c.open()
    assert f.find(q(NS_BIND, 'bind')) is not None
    c.bind(resource)
    return c


# -- the opening handshake ----------------------------------------------------

def test_handshake_without_xmpp_subprotocol_refused(server):
    for proto in (None, 'chat', 'XMPP'):
        c = WsClient(server.http_port)
        assert c.handshake(protocol=proto) == 400
        c.close()


def test_handshake_other_version_refused(server):
    c = WsClient(server.http_port)
    assert c.handshake(version='8') == 426
    assert c.headers['sec-websocket-version'] == '13'
    c.close()
    c = WsClient(server.http_port)
    assert c.handshake(version=None) == 426
    c.close()


def test_plain_get_is_told_to_upgrade(server):
    c = WsClient(server.http_port)
    assert c.handshake(upgrade=False) == 426
    assert c.headers['upgrade'] == 'websocket'
    c.close()


def test_get_without_key_gets_a_page(server):
    """No Sec-WebSocket-Key: not a handshake (a browser, or the
    Conversations compliance tester following host-meta, which sends
    Upgrade without a key and wants a 2xx): a page, with CORS."""
    for extra in ([], ['Upgrade: websocket', 'Connection: Upgrade']):
        for method in ('GET', 'HEAD'):
            s = socket.create_connection(('127.0.0.1', server.http_port))
            s.sendall(('\r\n'.join(['%s /xmpp-websocket HTTP/1.1' % method,
                                     'Host: localhost'] + extra +
                                    ['Connection: close', '', '']))
                      .encode())
            data = b''
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
            s.close()
            head, _, body = data.partition(b'\r\n\r\n')
            lines = head.decode().split('\r\n')
            assert lines[0].split()[1] == '200', (method, extra, lines)
            h = {k.strip().lower(): v.strip() for k, v in
                 (ln.split(':', 1) for ln in lines[1:])}
            assert h['content-type'].startswith('text/html')
            assert h['access-control-allow-origin'] == '*'
            assert int(h['content-length']) > 0
            assert body == (b'' if method == 'HEAD' else body)
            if method == 'GET':
                assert b'WebSocket' in body


def test_bad_key_refused(server):
    c = WsClient(server.http_port)
    assert c.handshake(key='c2hvcnQ=') == 400
    c.close()


def test_origin_allow_list(server):
    for origin in ('https://evil.example', None):
        c = WsClient(server.http_port)
        assert c.handshake(origin=origin) == 403
        c.close()
    c = ws(server, protocol='chat, xmpp', origin=ORIGIN.upper())
    c.open()
    c.close()


# -- logging in, messages ---------------------------------------------------

def test_scram_over_plain_http_then_bind(server):
    c = ws(server)
    f = c.open()
    mechs = mechanisms(f)
    # No STARTTLS over WebSocket; no PLAIN without TLS.
    assert f.find(q(xmpp_raw.NS_TLS, 'starttls')) is None
    assert 'SCRAM-SHA-256' in mechs and 'PLAIN' not in mechs
    res = c.sasl_scram('alice', 'alice-secret')
    xmpp_raw.assert_sasl_success(res.final)
    assert res.server_signature_ok
    # The stream restarts with a new <open/> (RFC 7395 §3.5).
    f = c.open()
    assert f.find(q(NS_BIND, 'bind')) is not None
    jid = c.bind('web')
    assert jid == 'alice@localhost/web'
    c.send("<close xmlns='%s'/>" % NS_FRAMING)
    c.expect(q(NS_FRAMING, 'close'))
    c.expect_close(1000)


def test_plain_over_https_and_messages_both_ways(server):
    c = ws(server, tls=True)
    f = c.open()
    assert 'PLAIN' in mechanisms(f)
    xmpp_raw.assert_sasl_success(c.sasl_plain('alice', 'alice-secret'))
    c.open()
    c.bind('wss')
    c.send("<presence xmlns='jabber:client'/>")
    bob = server.login('bob@localhost', resource='tcp')
    bob.presence()
    try:
        # From the WebSocket to a c2s user ...
        c.send("<message xmlns='jabber:client' to='bob@localhost/tcp' "
               "type='chat' id='w1'><body>over websocket</body></message>")
        m = bob.expect_stanza('message')
        assert m.get('from') == 'alice@localhost/wss'
        assert m.findtext(q(NS_CLIENT, 'body')) == 'over websocket'
        # ... and back: each stanza one message, in jabber:client.
        bob.message('alice@localhost/wss', 'over tcp', mid='t1')
        m = c.expect_stanza(q(NS_CLIENT, 'message'))
        assert m.get('from') == 'bob@localhost/tcp'
        assert m.findtext(q(NS_CLIENT, 'body')) == 'over tcp'
    finally:
        bob.close()
        c.close()


def test_iq_answered_and_session_listed(server):
    c = login(server, resource='listed')
    c.send("<iq type='get' id='p1' to='localhost'>"
           "<ping xmlns='urn:xmpp:ping'/></iq>")
    el = c.expect_stanza(q(NS_CLIENT, 'iq'))
    assert el.get('id') == 'p1' and el.get('type') == 'result'
    r = server.ctl('sessions')
    assert 'alice@localhost/listed' in r.stdout, r.stdout
    c.close()


# -- frames ---------------------------------------------------------------------

def test_ping_answered_with_pong(server):
    c = ws(server)
    c.send_frame(9, b'are you there')
    fin, op, payload = c.read_frame()
    assert (fin, op, payload) == (True, 10, b'are you there')
    c.open()
    c.close()


def test_fragmented_message_with_control_frame_between(server):
    c = ws(server)
    text = "<open xmlns='%s' to='localhost' version='1.0'/>" % NS_FRAMING
    c.send_frame(1, text[:10], fin=False)
    c.send_frame(0, text[10:30], fin=False)
    c.send_frame(9, b'x')               # §5.4: control frames between
    c.send_frame(0, text[30:], fin=True)
    assert c.read_frame()[1:] == (10, b'x')
    c.expect(q(NS_FRAMING, 'open'))
    c.expect(q(NS_STREAM, 'features'))
    c.close()


def test_unmasked_frame_closes_1002(server):
    c = ws(server)
    c.send_frame(1, "<open xmlns='%s' to='localhost' version='1.0'/>"
                 % NS_FRAMING, mask=False)
    c.expect_close(1002)


def test_continuation_without_message_closes_1002(server):
    c = ws(server)
    c.send_frame(0, 'x')
    c.expect_close(1002)


def test_binary_message_closes_1003(server):
    c = ws(server)
    c.send_frame(2, b'\x00\x01')
    c.expect_close(1003)


def test_oversized_frame_closes_1009(server):
    c = ws(server)
    # The header alone says too much: closed before the payload.
    c.send_frame(1, b'', length=STANZA_SIZE + 1)
    c.expect_close(1009)


def test_oversized_fragmented_message_closes_1009(server):
    c = ws(server)
    part = 'x' * 40000
    c.send_frame(1, '<a>' + part, fin=False)
    c.send_frame(0, part, fin=False)
    c.expect_close(1009)


# -- XMPP framing ------------------------------------------------------------

def test_close_handshake_from_client(server):
    c = login(server)
    c.send("<close xmlns='%s'/>" % NS_FRAMING)
    c.expect(q(NS_FRAMING, 'close'))
    c.expect_close(1000)


def test_stream_error_then_close(server):
    c = ws(server)
    c.send("<open xmlns='%s' to='unknown.example' version='1.0'/>"
           % NS_FRAMING)
    c.expect(q(NS_FRAMING, 'open'))
    err = c.expect(q(NS_STREAM, 'error'))
    assert err.find(q(NS_STREAM_ERR, 'host-unknown')) is not None
    c.expect(q(NS_FRAMING, 'close'))
    c.expect_close(1000)


def test_stanza_before_open_is_an_error(server):
    c = ws(server)
    c.send("<iq xmlns='jabber:client' type='get' id='x'/>")
    c.expect(q(NS_FRAMING, 'open'))
    err = c.expect(q(NS_STREAM, 'error'))
    assert err.find(q(NS_STREAM_ERR, 'not-authorized')) is not None
    c.expect(q(NS_FRAMING, 'close'))
    c.expect_close(1000)


def test_two_elements_in_one_message_is_an_error(server):
    c = login(server)
    c.send("<iq type='get' id='a' to='localhost'>"
           "<ping xmlns='urn:xmpp:ping'/></iq>"
           "<iq type='get' id='b' to='localhost'>"
           "<ping xmlns='urn:xmpp:ping'/></iq>")
    err = c.expect_stanza(q(NS_STREAM, 'error'), skip=('presence', 'iq'))
    assert err.find(q(NS_STREAM_ERR, 'not-well-formed')) is not None
    c.expect(q(NS_FRAMING, 'close'))
    c.expect_close(1000)


def test_incomplete_element_is_an_error(server):
    c = ws(server)
    c.open()
    c.send("<iq type='get' id='a'>")
    err = c.expect(q(NS_STREAM, 'error'))
    assert err.find(q(NS_STREAM_ERR, 'not-well-formed')) is not None
    c.expect(q(NS_FRAMING, 'close'))
    c.expect_close(1000)


def test_starttls_refused_over_websocket(server):
    c = ws(server)
    c.open()
    c.send("<starttls xmlns='%s'/>" % xmpp_raw.NS_TLS)
    err = c.expect(q(NS_STREAM, 'error'))
    assert err.find(q(NS_STREAM_ERR, 'policy-violation')) is not None
    c.expect(q(NS_FRAMING, 'close'))
    c.expect_close(1000)


def test_stream_management_resumes_on_a_new_websocket(server):
    c = login(server, resource='sm')
    c.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
    en = c.expect(q(NS_SM, 'enabled'))
    previd = en.get('id')
    assert previd and en.get('resume') == 'true'
    c.close()                           # lost, not closed
    time.sleep(0.3)
    bob = server.login('bob@localhost', resource='r')
    bob.message('alice@localhost/sm', 'while away', mid='away1')
    time.sleep(0.3)
    d = ws(server)
    d.open()
    xmpp_raw.assert_sasl_success(d.sasl_scram('alice',
                                              'alice-secret').final)
    d.open()
    d.send("<resume xmlns='%s' previd='%s' h='0'/>" % (NS_SM, previd))
    d.expect(q(NS_SM, 'resumed'))
    m = d.expect_stanza(q(NS_CLIENT, 'message'), skip=('presence', 'r'))
    assert m.findtext(q(NS_CLIENT, 'body')) == 'while away'
    bob.close()
    d.close()


# -- XEP-0156 host-meta ----------------------------------------------------

def http_get(port, path, host='localhost', source='127.0.0.1', extra=''):
    s = socket.create_connection(('127.0.0.1', port), timeout=5,
                                 source_address=(source, 0))
    s.sendall(('GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s\r\n'
               % (path, host, extra)).encode())
    data = b''
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    head, body = data.split(b'\r\n\r\n', 1)
    lines = head.decode().split('\r\n')
    headers = {}
    for line in lines[1:]:
        k, v = line.split(':', 1)
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, body


XRD = '{http://docs.oasis-open.org/ns/xri/xrd-1.0}'
REL = 'urn:xmpp:alt-connections:websocket'


def test_host_meta_xrd(server):
    status, h, body = http_get(server.http_port, '/.well-known/host-meta')
    assert status == 200
    assert h['content-type'] == 'application/xrd+xml'
    assert h['access-control-allow-origin'] == '*'
    root = ET.fromstring(body)
    assert root.tag == XRD + 'XRD'
    links = [(l.get('rel'), l.get('href')) for l in root.iter(XRD + 'Link')]
    assert links == [(REL, WS_URL)]


def test_host_meta_json(server):
    status, h, body = http_get(server.http_port,
                               '/.well-known/host-meta.json')
    assert status == 200
    assert h['content-type'] == 'application/json'
    assert h['access-control-allow-origin'] == '*'
    assert json.loads(body) == {'links': [{'rel': REL, 'href': WS_URL}]}


def test_host_meta_derived_from_the_request(server):
    """No websocket-url for a Host that is an address: the URL the request
    came to, with its scheme."""
    host = '127.0.0.1:%d' % server.http_port
    status, h, body = http_get(server.http_port,
                               '/.well-known/host-meta.json', host=host)
    assert status == 200
    assert json.loads(body)['links'] == [
        {'rel': REL, 'href': 'ws://%s/xmpp-websocket' % host}]


def test_idle_stream_releases_its_parser_and_goes_on(server):
    """An idle stream's parser is released (c2s.c idle_cb, 2 s) and a new
    one primed with the implicit root: the next message is parsed the
    same, not taken for a new header."""
    c = ws(server)
    c.open()
    time.sleep(4.5)
    res = c.sasl_scram('alice', 'alice-secret')
    xmpp_raw.assert_sasl_success(res.final)
    c.open()
    c.bind('idle')
    time.sleep(4.5)
    c.send("<iq type='get' id='p2' to='localhost'>"
           "<ping xmlns='urn:xmpp:ping'/></iq>")
    el = c.expect_stanza(q(NS_CLIENT, 'iq'))
    assert el.get('id') == 'p2' and el.get('type') == 'result'
    c.close()


def test_client_behind_a_trusted_proxy_is_counted_as_itself(server):
    """Through a trusted proxy, the per-IP accounting and the failure log
    line name the client the proxy names, not the proxy."""
    c = WsClient(server.http_port, source='127.0.0.2')
    assert c.handshake(extra=('X-Forwarded-For: 198.51.100.7',)) == 101
    c.open()
    res = c.sasl_scram('alice', 'wrong-password')
    xmpp_raw.assert_sasl_failure(res.final, 'not-authorized')
    c.close()
    deadline = time.monotonic() + 5
    want = 'authentication failed for alice@localhost from 198.51.100.7'
    while want not in server.stderr_text():
        assert time.monotonic() < deadline, server.stderr_tail()
        time.sleep(0.05)


def test_websocket_follows_reload(certificate):
    """SIGHUP with "websocket off" takes the endpoint and host-meta away
    (404) while an open WebSocket stream goes on; "on" brings them
    back."""
    srv = WsServer(certificate).start()
    try:
        c = login(srv, resource='stays')
        for setting, want in (('off', 404), ('on', 200)):
            srv.websocket = setting
            srv.conf.write_text(srv.config_text())
            mark = len(srv.stderr_text())
            srv.signal(signal.SIGHUP)
            deadline = time.monotonic() + 5
            while 'configuration and certificates reloaded' not in \
                    srv.stderr_text()[mark:]:
                assert time.monotonic() < deadline, srv.stderr_tail()
                time.sleep(0.05)
            assert http_get(srv.http_port,
                            '/.well-known/host-meta')[0] == want
            d = WsClient(srv.http_port)
            assert d.handshake() == (404 if want == 404 else 101)
            d.close()
        c.send("<iq type='get' id='p3' to='localhost'>"
               "<ping xmlns='urn:xmpp:ping'/></iq>")
        el = c.expect_stanza(q(NS_CLIENT, 'iq'))
        assert el.get('id') == 'p3' and el.get('type') == 'result'
        c.close()
    finally:
        srv.stop()


def test_groupchat_fan_out_reaches_a_websocket(server):
    """MUC sends one serialization to every occupant (session.c's
    fan-out): over WebSocket each still arrives as one element."""
    NS_MUC = 'http://jabber.org/protocol/muc'
    room = 'wsroom@conference.localhost'
    c = login(server, resource='muc')
    c.send("<presence to='%s/alice'><x xmlns='%s'/></presence>"
           % (room, NS_MUC))
    p = c.expect_stanza(q(NS_CLIENT, 'presence'), skip=())
    assert p.get('from') == room + '/alice', tostr(p)
    c.send("<iq type='set' id='cfg' to='%s'><query xmlns='%s#owner'>"
           "<x xmlns='jabber:x:data' type='submit'/></query></iq>"
           % (room, NS_MUC))
    while True:
        el = c.next_element()
        if el.tag == q(NS_CLIENT, 'iq'):
            assert el.get('id') == 'cfg' and el.get('type') == 'result'
            break
    c.send("<message to='%s' type='groupchat' id='g1'>"
           "<body>to the room</body></message>" % room)
    while True:
        m = c.next_element()
        if m.tag == q(NS_CLIENT, 'message') and m.get('id') == 'g1':
            break
    assert m.get('from') == room + '/alice'
    assert m.get('to') == 'alice@localhost/muc'
    assert m.findtext(q(NS_CLIENT, 'body')) == 'to the room'
    c.close()


def test_host_meta_lists_nothing_it_cannot_know(server):
    """Without a websocket-url, a request through a proxy (a trusted one,
    or one naming its client) gets no link: the public URL is not ours
    to guess."""
    host = '127.0.0.1:%d' % server.http_port
    for source, extra in (('127.0.0.2', ''),
                          ('127.0.0.1', 'X-Forwarded-For: 192.0.2.1\r\n'),
                          ('127.0.0.1', 'Forwarded: for=192.0.2.1\r\n')):
        status, h, body = http_get(server.http_port,
                                   '/.well-known/host-meta.json', host=host,
                                   source=source, extra=extra)
        assert status == 200 and json.loads(body) == {'links': []}
        status, h, body = http_get(server.http_port,
                                   '/.well-known/host-meta', host=host,
                                   source=source, extra=extra)
        assert status == 200
        assert list(ET.fromstring(body).iter(XRD + 'Link')) == []


# The README's nginx example, as written there (PORT: xmppd's http).
NGINX_LOCATIONS = """
        location /xmpp-websocket {
            proxy_pass http://127.0.0.1:PORT;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout 1h;
        }
        location /.well-known/host-meta {
            proxy_pass http://127.0.0.1:PORT;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }
"""


def test_behind_nginx_as_in_the_readme(certificate, tmp_path):
    """The README's reverse-proxy example: nginx in front of the http
    listener carries the WebSocket (login, a message, the client's own
    address in the failure log) and host-meta (the websocket-url)."""
    nginx = shutil.which('nginx') or (
        '/usr/sbin/nginx' if os.path.exists('/usr/sbin/nginx') else None)
    if nginx is None:
        pytest.skip('nginx is not installed (Debian package nginx): the '
                    'README example is not tried')
    srv = WsServer(certificate)
    srv.trusted_proxy = '127.0.0.1'
    srv.start()
    port, = free_ports(1)
    d = tmp_path
    conf = d / 'nginx.conf'
    conf.write_text("""
pid %(d)s/nginx.pid;
error_log %(d)s/error.log;
daemon off;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %(d)s/body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fastcgi;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
    server {
        listen 127.0.0.1:%(port)d;
%(locations)s
    }
}
""" % {'d': d, 'port': port,
       'locations': NGINX_LOCATIONS.replace('PORT', str(srv.http_port))})
    proc = subprocess.Popen([nginx, '-p', str(d), '-c', str(conf)],
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(('127.0.0.1', port), 0.5).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, 'nginx did not start'
                time.sleep(0.05)
        host = 'localhost:%d' % port
        status, h, body = http_get(port, '/.well-known/host-meta.json',
                                   host=host)
        assert status == 200 and json.loads(body)['links'] == [
            {'rel': REL, 'href': WS_URL}]
        c = WsClient(port)
        assert c.handshake(host=host) == 101
        c.open()
        xmpp_raw.assert_sasl_success(
            c.sasl_scram('alice', 'alice-secret').final)
        c.open()
        c.bind('nginx')
        c.send("<iq type='get' id='n1' to='localhost'>"
               "<ping xmlns='urn:xmpp:ping'/></iq>")
        el = c.expect_stanza(q(NS_CLIENT, 'iq'))
        assert el.get('id') == 'n1' and el.get('type') == 'result'
        c.send("<close xmlns='%s'/>" % NS_FRAMING)
        c.expect(q(NS_FRAMING, 'close'))
        c.expect_close(1000)
        c = WsClient(port, source='127.0.0.3')
        assert c.handshake(host=host) == 101
        c.open()
        xmpp_raw.assert_sasl_failure(
            c.sasl_scram('bob', 'wrong').final, 'not-authorized')
        c.close()
        want = 'authentication failed for bob@localhost from 127.0.0.3'
        deadline = time.monotonic() + 5
        while want not in srv.stderr_text():
            assert time.monotonic() < deadline, srv.stderr_tail()
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        srv.stop()
