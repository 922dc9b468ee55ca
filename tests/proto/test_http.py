"""HTTP/1.1 listeners (issue 17, parts 1 and 6) with raw sockets against
a real daemon: keep-alive and pipelining, chunked and sized bodies, the
errors of a strict parser (400, 413, 414, 431, 505), the header timeout
(408), Host (400, 421), unknown routes (404), methods (405, 501), HEAD,
/metrics with and without its token (401, 403, 200) parsed by
prometheus_client's parser, counters that move when a client logs in,
Forwarded / X-Forwarded-For honoured only from a trusted proxy (seen in
the request's log line), https with SNI and ALPN http/1.1; and c2s still
serving beside it."""

import re
import socket
import ssl
import time

import pytest

from conftest import Server, free_ports
from test_limits import auth_plain, tls_stream_from
import xmpp_raw
from xmpp_raw import assert_sasl_failure

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:     # python3-prometheus-client (make deps)
    text_string_to_metric_families = None

TOKEN = 'metrics-token-0123456789'
HEADER_TIMEOUT = 1


class HttpServer(Server):
    """A daemon with an http listener (open for /metrics), an https one
    (token), and 127.0.0.2 as a trusted proxy."""

    def __init__(self, certificate, metrics=None, **kw):
        kw.setdefault('limits', {})
        kw['limits'].setdefault('http-header-timeout', HEADER_TIMEOUT)
        super().__init__(certificate, **kw)
        self.metrics = metrics
        self.http_port = self.https_port = None

    def config_text(self):
        metrics = self.metrics
        if metrics is None:
            metrics = ('metrics {\n\tlistener HTTP_PORT\n\ttoken "%s"\n}'
                       % TOKEN)
        metrics = metrics.replace('HTTP_PORT', str(self.http_port))
        return super().config_text() + '\n'.join([
            'listen http %d address 127.0.0.1' % self.http_port,
            'listen https %d address 127.0.0.1' % self.https_port,
            'http-trusted-proxy 127.0.0.2',
            metrics, '']) + '\n'

    def start(self, create_users=True):
        self.http_port, self.https_port = free_ports(2)
        return super().start(create_users)


@pytest.fixture(scope='module')
def server(certificate):
    srv = HttpServer(certificate).start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    server.assert_serves()


def connect(port, source='127.0.0.1', timeout=5):
    s = socket.create_connection(('127.0.0.1', port), timeout=timeout,
                                 source_address=(source, 0))
    return s


class Reader:
    """Responses read off a socket, one at a time."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b''

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError('connection closed')
        self.buf += data

    def _line(self):
        while b'\r\n' not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line.decode('latin-1')

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def response(self, head=False):
        """(status, {lowercased name: value}, body)."""
        status_line = self._line()
        m = re.match(r'HTTP/1\.1 (\d{3}) ', status_line)
        assert m, status_line
        status = int(m.group(1))
        headers = {}
        while True:
            line = self._line()
            if line == '':
                break
            name, value = line.split(':', 1)
            assert name.lower() not in headers, line
            headers[name.lower()] = value.strip()
        body = b''
        if head or status in (204, 304) or status < 200:
            return status, headers, body
        if headers.get('transfer-encoding') == 'chunked':
            while True:
                size = int(self._line(), 16)
                if size == 0:
                    assert self._line() == ''
                    break
                body += self._take(size)
                assert self._take(2) == b'\r\n'
        else:
            body = self._take(int(headers['content-length']))
        return status, headers, body

    def closed(self, timeout=3):
        """The server closes the connection (nothing more was sent)."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1)
        except ConnectionResetError:
            return True
        assert self.buf == b'' and data == b'', (self.buf, data)
        return True


def request(method='GET', path='/metrics', host='localhost', extra='',
            version='1.1'):
    h = 'Host: %s\r\n' % host if host is not None else ''
    return ('%s %s HTTP/%s\r\n%s%s\r\n' % (method, path, version, h, extra)
            ).encode()


def exchange(port, data, n=1, source='127.0.0.1', head=False):
    s = connect(port, source)
    try:
        s.sendall(data)
        r = Reader(s)
        return [r.response(head=head) for _ in range(n)], r
    finally:
        pass


def metrics_dict(body):
    """{(name, frozenset(labels)): value} through prometheus_client."""
    if text_string_to_metric_families is None:
        pytest.fail('python3-prometheus-client is missing (make deps)')
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def get_metrics(server):
    (resp,), r = exchange(server.http_port, request())
    r.sock.close()
    status, headers, body = resp
    assert status == 200, resp
    assert headers['content-type'].startswith('text/plain; version=0.0.4')
    return metrics_dict(body)


# -- keep-alive, pipelining, framing --

def test_keep_alive(server):
    s = connect(server.http_port)
    r = Reader(s)
    for _ in range(3):
        s.sendall(request())
        status, headers, body = r.response()
        assert status == 200 and b'xmppd_sessions' in body
        assert 'connection' not in headers
        assert re.match(r'\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$',
                        headers['date'])
    s.sendall(request(extra='Connection: close\r\n'))
    status, headers, _ = r.response()
    assert status == 200 and headers['connection'] == 'close'
    assert r.closed()


def test_pipelined_in_order(server):
    data = (request(path='/nothing') + request() +
            request(path='/metrics/x') + request(method='HEAD'))
    resps, r = exchange(server.http_port, data, 3)
    assert [x[0] for x in resps] == [404, 200, 404]
    status, headers, body = r.response(head=True)
    assert status == 200 and body == b'' and int(headers['content-length'])
    r.sock.sendall(request(path='/again'))
    assert r.response()[0] == 404     # no stray body bytes before it
    r.sock.close()


def test_http10_closes_unless_keep_alive(server):
    (resp,), r = exchange(server.http_port,
                          request(version='1.0', host=None))
    assert resp[0] == 200 and resp[1]['connection'] == 'close'
    assert r.closed()
    (resp,), r = exchange(server.http_port, request(
        version='1.0', extra='Connection: keep-alive\r\n'))
    assert resp[0] == 200 and resp[1]['connection'] == 'keep-alive'
    r.sock.sendall(request())
    assert r.response()[0] == 200
    r.sock.close()


def test_chunked_body(server):
    # An empty chunked body with a chunk extension and a trailer, then
    # another request: the framing is read right.
    data = (request(extra='Transfer-Encoding: chunked\r\n') +
            b'0;ext=1\r\nX-Trailer: t\r\n\r\n' + request(path='/nope'))
    resps, r = exchange(server.http_port, data, 2)
    assert [x[0] for x in resps] == [200, 404]
    r.sock.close()
    # A chunk of data on a route that takes no body: 413, closed.
    data = (request(extra='Transfer-Encoding: chunked\r\n') +
            b'5\r\nhello\r\n0\r\n\r\n')
    (resp,), r = exchange(server.http_port, data)
    assert resp[0] == 413 and resp[1]['connection'] == 'close'
    assert r.closed()
    # A malformed chunk size: 400.
    data = (request(extra='Transfer-Encoding: chunked\r\n') +
            b'zz\r\nhello\r\n0\r\n\r\n')
    (resp,), r = exchange(server.http_port, data)
    assert resp[0] in (400, 413), resp
    assert r.closed()


def test_body_too_large(server):
    (resp,), r = exchange(server.http_port, request(
        extra='Content-Length: 100\r\n') + b'x' * 100)
    assert resp[0] == 413 and resp[1]['connection'] == 'close'
    assert r.closed()


@pytest.mark.parametrize('data', [
    b'GET /metrics\r\n\r\n',                        # no version
    b'GET  /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n',
    b'BREW /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n',
    b'GET /metrics HTTP/1.1\r\nHost : localhost\r\n\r\n',
    b'GET /metrics HTTP/1.1\r\nHost: localhost\r\nX: a\r\n b\r\n\r\n',
    b'GET /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\n'
    b'Content-Length: 2\r\n\r\nxx',
    b'GET /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n'
    b'Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03',  # TLS to plain HTTP
])
def test_malformed_request_is_400(server, data):
    (resp,), r = exchange(server.http_port, data)
    assert resp[0] == 400, resp
    assert resp[1]['connection'] == 'close'
    assert r.closed()


def test_version_not_supported(server):
    (resp,), r = exchange(server.http_port, request(version='2.0'))
    assert resp[0] == 505
    assert r.closed()


def test_too_many_headers(server):
    extra = ''.join('X-H%d: v\r\n' % i for i in range(70))
    (resp,), r = exchange(server.http_port, request(extra=extra))
    assert resp[0] == 431 and resp[1]['connection'] == 'close'
    assert r.closed()


def test_header_too_large(server):
    (resp,), r = exchange(server.http_port,
                          request(extra='X-Big: %s\r\n' % ('a' * 20000)))
    assert resp[0] == 431
    assert r.closed()


def test_target_too_long(server):
    (resp,), r = exchange(server.http_port,
                          request(path='/' + 'a' * 20000))
    assert resp[0] == 414
    assert r.closed()


def test_header_timeout(server):
    s = connect(server.http_port)
    s.sendall(b'GET /metrics HTTP/1.1\r\nHost: localhost\r\n')
    t0 = time.monotonic()
    r = Reader(s)
    s.settimeout(HEADER_TIMEOUT + 5)
    status, headers, _ = r.response()
    elapsed = time.monotonic() - t0
    assert status == 408 and headers['connection'] == 'close'
    assert HEADER_TIMEOUT - 0.2 <= elapsed < HEADER_TIMEOUT + 3, elapsed
    assert r.closed()


def test_slow_headers_still_time_out(server):
    """A byte now and then does not extend the header deadline."""
    s = connect(server.http_port)
    s.sendall(b'GET /metrics HTTP/1.1\r\n')
    t0 = time.monotonic()
    r = Reader(s)
    s.settimeout(0.3)
    got = None
    while time.monotonic() - t0 < HEADER_TIMEOUT + 3:
        try:
            s.sendall(b'X')
        except OSError:
            break
        try:
            r._fill()
            got = r.response()
            break
        except socket.timeout:
            continue
    assert got is not None and got[0] == 408, got


def test_host_rules(server):
    # RFC 9112 §3.2: no Host on 1.1, or two, is 400.
    (resp,), r = exchange(server.http_port, request(host=None))
    assert resp[0] == 400
    r.sock.close()
    (resp,), r = exchange(server.http_port,
                          request(extra='Host: localhost\r\n'))
    assert resp[0] == 400
    r.sock.close()
    (resp,), r = exchange(server.http_port, request(host='a b'))
    assert resp[0] == 400
    r.sock.close()
    # A name this server does not serve: 421, the connection stays.
    (resp,), r = exchange(server.http_port, request(host='other.example'))
    assert resp[0] == 421 and 'connection' not in resp[1]
    r.sock.close()
    # The configured host with a port, in any case, and an IP address.
    for host in ('LocalHost:%d' % server.http_port, '127.0.0.1',
                 '[::1]:80'):
        (resp,), r = exchange(server.http_port, request(host=host))
        assert resp[0] == 200, (host, resp)
        r.sock.close()
    # An absolute target names the host instead of Host (RFC 9112 §3.2.2).
    (resp,), r = exchange(server.http_port, request(
        path='http://other.example/metrics'))
    assert resp[0] == 421
    r.sock.close()
    (resp,), r = exchange(server.http_port, request(
        path='http://localhost:1/metrics', host='other.example'))
    assert resp[0] == 200
    r.sock.close()


def test_unknown_route_and_methods(server):
    (resp,), r = exchange(server.http_port, request(path='/nothing'))
    assert resp[0] == 404 and 'connection' not in resp[1]
    r.sock.close()
    (resp,), r = exchange(server.http_port, request(method='POST'))
    assert resp[0] == 405 and resp[1]['allow'] == 'GET, HEAD'
    r.sock.close()
    (resp,), r = exchange(server.http_port, request(method='PATCH'))
    assert resp[0] == 501
    r.sock.close()


def test_upgrade_not_taken_closes(server):
    (resp,), r = exchange(server.http_port, request(
        extra='Connection: Upgrade\r\nUpgrade: websocket\r\n'))
    assert resp[0] == 200 and resp[1]['connection'] == 'close'
    assert r.closed()


# -- metrics --

def test_metrics_format_and_counters(server):
    before = get_metrics(server)
    assert before[('xmppd_sessions', frozenset({('transport', 'c2s')}))] \
        == 0
    c = server.login('alice@localhost', resource='metrics')
    try:
        c.send("<iq type='get' id='m1' to='localhost'>"
               "<query xmlns='urn:xmpp:ping'/></iq>")
        c.expect(xmpp_raw.q(xmpp_raw.NS_CLIENT, 'iq'))
        after = get_metrics(server)
        c2s = frozenset({('transport', 'c2s')})
        assert after[('xmppd_sessions', c2s)] == 1
        assert after[('xmppd_logins_total', frozenset())] == \
            before[('xmppd_logins_total', frozenset())] + 1
        inn = frozenset({('direction', 'in')})
        assert after[('xmppd_stanzas_total', inn)] > \
            before[('xmppd_stanzas_total', inn)]
        assert after[('xmppd_bytes_total', inn)] > \
            before[('xmppd_bytes_total', inn)]
        ok = frozenset({('code', '200')})
        assert after[('xmppd_http_requests_total', ok)] > \
            before[('xmppd_http_requests_total', ok)]
        inf = frozenset({('le', '+Inf')})
        assert after[('xmppd_storage_commit_seconds_bucket', inf)] == \
            after[('xmppd_storage_commit_seconds_count', frozenset())]
        assert after[('xmppd_storage_commit_seconds_count',
                      frozenset())] >= 2    # the adduser commits
        assert ('xmppd_storage_queue_depth', frozenset()) in after
    finally:
        c.close()
    # A failed login moves its counter.
    bad, _ = tls_stream_from('127.0.0.1', server)
    try:
        auth_plain(bad, 'alice', 'wrong')
        assert_sasl_failure(bad.next_element(), 'not-authorized')
    finally:
        bad.close()
    fail = ('xmppd_login_failures_total', frozenset())
    assert get_metrics(server)[fail] == before[fail] + 1


def https_get(server, path='/metrics', extra='', sni='localhost'):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(['h2', 'http/1.1'])
    s = ssl.SSLContext.wrap_socket(ctx, connect(server.https_port),
                                   server_hostname=sni)
    try:
        assert s.selected_alpn_protocol() == 'http/1.1'
        s.sendall(request(path=path, extra=extra))
        return Reader(s).response(), s.getpeercert(binary_form=True)
    finally:
        s.close()


def test_metrics_token(server):
    (status, headers, _), _ = https_get(server)
    assert status == 401
    assert headers['www-authenticate'].startswith('Bearer')
    (status, _, _), _ = https_get(
        server, extra='Authorization: Bearer wrong-token-000000000\r\n')
    assert status == 401
    (status, headers, body), _ = https_get(
        server, extra='Authorization: bearer %s\r\n' % TOKEN)
    assert status == 200 and b'# EOF' in body
    metrics_dict(body)
    assert re.search(r'metrics refused \(401\)', server.stderr_text())


def test_https_sni(server):
    (status, _, _), der = https_get(server, path='/none', sni='localhost')
    assert status == 404
    cert = ssl.DER_cert_to_PEM_cert(der)
    assert cert == open(server.cert).read().split(
        '-----END CERTIFICATE-----')[0] + '-----END CERTIFICATE-----\n'


def test_metrics_forbidden_without_token(certificate):
    """A metrics block with a listener and no token: the other listener
    answers 403 (nothing could authorize it), with or without a token;
    and no metrics block at all: 404."""
    srv = HttpServer(certificate,
                     metrics='metrics {\n\tlistener HTTP_PORT\n}')
    srv.start(create_users=False)
    try:
        (status, _, _), _ = https_get(srv)
        assert status == 403
        (status, _, _), _ = https_get(
            srv, extra='Authorization: Bearer %s\r\n' % TOKEN)
        assert status == 403
        (resp,), r = exchange(srv.http_port, request())
        assert resp[0] == 200
        r.sock.close()
    finally:
        srv.stop()
    srv = HttpServer(certificate, metrics='')
    srv.start(create_users=False)
    try:
        (resp,), r = exchange(srv.http_port, request())
        assert resp[0] == 404
        r.sock.close()
    finally:
        srv.stop()


# -- trusted proxies --

def log_lines_after(server, mark, pattern):
    text = server.stderr_text()[mark:]
    return re.findall(pattern, text)


def wait_log(server, mark, pattern, timeout=3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = log_lines_after(server, mark, pattern)
        if found:
            return found
        time.sleep(0.05)
    return []


def test_forwarded_only_from_trusted_proxy(server):
    mark = len(server.stderr_text())
    # From the trusted proxy: the client is whom it names.
    (resp,), r = exchange(server.http_port, request(
        path='/xff-1',
        extra='X-Forwarded-For: 198.51.100.1, 203.0.113.7\r\n'),
        source='127.0.0.2')
    assert resp[0] == 404
    r.sock.close()
    assert wait_log(server, mark, r'client 203\.0\.113\.7: GET /xff-1 ')
    # Forwarded wins over X-Forwarded-For; a quoted IPv6 with a port.
    (resp,), r = exchange(server.http_port, request(
        path='/xff-2', extra='Forwarded: for=192.0.2.60;proto=http, '
        'for="[2001:db8::1]:4711"\r\nX-Forwarded-For: 203.0.113.9\r\n'),
        source='127.0.0.2')
    r.sock.close()
    assert wait_log(server, mark, r'client 2001:db8::1: GET /xff-2 ')
    # Further trusted hops are skipped.
    (resp,), r = exchange(server.http_port, request(
        path='/xff-3', extra='X-Forwarded-For: 203.0.113.5, 127.0.0.2\r\n'),
        source='127.0.0.2')
    r.sock.close()
    assert wait_log(server, mark, r'client 203\.0\.113\.5: GET /xff-3 ')
    # From anyone else the fields are ignored.
    (resp,), r = exchange(server.http_port, request(
        path='/xff-4', extra='X-Forwarded-For: 203.0.113.8\r\n'
        'Forwarded: for=203.0.113.8\r\n'))
    r.sock.close()
    assert wait_log(server, mark, r'client 127\.0\.0\.1: GET /xff-4 ')
    assert not log_lines_after(server, mark, r'203\.0\.113\.8')
    # Garbage from the proxy: the proxy stays the client.
    (resp,), r = exchange(server.http_port, request(
        path='/xff-5', extra='X-Forwarded-For: not-an-address\r\n'),
        source='127.0.0.2')
    r.sock.close()
    assert wait_log(server, mark, r'client 127\.0\.0\.2: GET /xff-5 ')


def test_metrics_follow_reload(certificate):
    """SIGHUP with the metrics block removed takes /metrics away; put
    back, it returns."""
    import signal
    srv = HttpServer(certificate).start(create_users=False)
    try:
        assert exchange(srv.http_port, request())[0][0][0] == 200
        for block, want in (('', 404), (None, 200)):
            srv.metrics = block
            srv.conf.write_text(srv.config_text())
            mark = len(srv.stderr_text())
            srv.signal(signal.SIGHUP)
            assert wait_log(srv, mark, r'configuration and certificates '
                            r'reloaded'), srv.stderr_tail()
            (resp,), r = exchange(srv.http_port, request())
            r.sock.close()
            assert resp[0] == want, resp
    finally:
        srv.stop()
