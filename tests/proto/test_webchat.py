"""A web client in the box (issue 17 item 7): "webchat PATH DIRECTORY"
serves a static directory on the http listener, checked with raw HTTP:
types by extension, index.html and the redirect to a directory's '/',
GET and HEAD only (405 with Allow), no way out of the directory (.., its
encodings, NUL, encoded '/', hidden names, symbolic links that leave
it), validators and 304s (ETag / If-None-Match, Last-Modified /
If-Modified-Since), Cache-Control, nosniff, Range (206, 416, If-Range),
a large file sent whole while the daemon keeps serving, a reload that
moves the route, the configuration errors; and Converse.js's dist served
by webchat logging in from headless Chromium over the WebSocket of the
same origin (skipped where the browser or npm cannot be had)."""

import hashlib
import os
import signal
import subprocess
import time

import pytest

from conftest import XMPPD_BIN, Server, free_ports
from test_http import Reader, connect, exchange, request

BIG = 3 * 1024 * 1024 + 12345
SECRET = b'the secret outside the directory'


def make_site(root):
    """The served directory, a secret beside it, and links."""
    site = root / 'site'
    (site / 'sub').mkdir(parents=True)
    (site / 'dist').mkdir()
    (root / 'secret.txt').write_bytes(SECRET)
    (root / 'outside').mkdir()
    (root / 'outside' / 'x.js').write_bytes(SECRET)
    files = {
        'index.html': b'<!doctype html><title>chat</title>',
        'sub/index.html': b'<p>sub</p>',
        'app.js': b'console.log("converse");\n',
        'mod.mjs': b'export default 1;\n',
        'style.css': b'body{}\n',
        'data.json': b'{"a":1}\n',
        'app.js.map': b'{"version":3}\n',
        'logo.svg': b'<svg/>',
        'logo.png': b'\x89PNG\r\n',
        'photo.jpg': b'\xff\xd8\xff',
        'anim.gif': b'GIF89a',
        'pic.webp': b'RIFF',
        'favicon.ico': b'\x00\x00\x01\x00',
        'font.woff': b'wOFF',
        'font.woff2': b'wOF2',
        'font.ttf': b'\x00\x01\x00\x00',
        'code.wasm': b'\x00asm',
        'notes.txt': b'hello\n',
        'blob.bin': b'\x00\x01',
        'UPPER.JS': b'1;',
        'space name.txt': b'spaced',
        '.hidden': b'hidden',
        'dist/converse.min.js': b'/* converse */',
    }
    for name, data in files.items():
        (site / name).write_bytes(data)
    big = os.urandom(BIG)
    (site / 'big.bin').write_bytes(big)
    os.symlink('app.js', site / 'inside-link.js')
    os.symlink('../secret.txt', site / 'escape.txt')
    os.symlink(str(root / 'secret.txt'), site / 'escape-abs.txt')
    os.symlink('../outside', site / 'outdir')
    os.mkfifo(site / 'fifo.js')
    return site, files, big


class WebchatServer(Server):
    def __init__(self, certificate, site, **kw):
        super().__init__(certificate, **kw)
        self.site = site
        self.http_port = None
        self.webchat = 'webchat "/chat" "%s" max-age 2h' % site

    def config_text(self):
        return super().config_text() + '\n'.join([
            'listen http %d address 127.0.0.1' % self.http_port,
            self.webchat, '']) + '\n'

    def start(self, create_users=True):
        self.http_port, = free_ports(1)
        return super().start(create_users)


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    return make_site(tmp_path_factory.mktemp('webchat'))


@pytest.fixture(scope='module')
def server(certificate, site):
    srv = WebchatServer(certificate, site[0]).start()
    yield srv
    srv.stop()


def get(server, path, method='GET', extra='', head=None):
    if head is None:
        head = method == 'HEAD'
    (resp,), r = exchange(server.http_port,
                          request(method=method, path=path, extra=extra),
                          head=head)
    r.sock.close()
    return resp


# -- files and types --

TYPES = [
    ('index.html', 'text/html; charset=utf-8'),
    ('app.js', 'text/javascript; charset=utf-8'),
    ('mod.mjs', 'text/javascript; charset=utf-8'),
    ('style.css', 'text/css; charset=utf-8'),
    ('data.json', 'application/json'),
    ('app.js.map', 'application/json'),
    ('logo.svg', 'image/svg+xml'),
    ('logo.png', 'image/png'),
    ('photo.jpg', 'image/jpeg'),
    ('anim.gif', 'image/gif'),
    ('pic.webp', 'image/webp'),
    ('favicon.ico', 'image/vnd.microsoft.icon'),
    ('font.woff', 'font/woff'),
    ('font.woff2', 'font/woff2'),
    ('font.ttf', 'font/ttf'),
    ('code.wasm', 'application/wasm'),
    ('notes.txt', 'text/plain; charset=utf-8'),
    ('blob.bin', 'application/octet-stream'),
    ('UPPER.JS', 'text/javascript; charset=utf-8'),
    ('dist/converse.min.js', 'text/javascript; charset=utf-8'),
]


@pytest.mark.parametrize('name,ctype', TYPES)
def test_types(server, site, name, ctype):
    status, headers, body = get(server, '/chat/' + name)
    assert status == 200, (status, body)
    assert headers['content-type'] == ctype
    assert body == site[1][name]
    assert headers['content-length'] == str(len(body))
    assert headers['x-content-type-options'] == 'nosniff'
    assert headers['accept-ranges'] == 'bytes'


def test_index_and_caching_headers(server, site):
    status, headers, body = get(server, '/chat/')
    assert status == 200 and body == site[1]['index.html']
    assert headers['content-type'] == 'text/html; charset=utf-8'
    # HTML is revalidated every time, so a new version is seen at once;
    # the rest is cached for the configured max-age (2h).
    assert headers['cache-control'] == 'no-cache'
    assert headers['etag'].startswith('"') and headers['etag'].endswith('"')
    st = os.stat(site[0] / 'index.html')
    assert headers['last-modified'] == time.strftime(
        '%a, %d %b %Y %H:%M:%S GMT', time.gmtime(int(st.st_mtime)))
    status, headers, _ = get(server, '/chat/app.js')
    assert headers['cache-control'] == 'public, max-age=7200'
    status, _, body = get(server, '/chat/sub/')
    assert status == 200 and body == b'<p>sub</p>'
    status, _, body = get(server, '/chat/space%20name.txt')
    assert status == 200 and body == b'spaced'


@pytest.mark.parametrize('path,location', [
    ('/chat', '/chat/'),
    ('/chat?x=1', '/chat/?x=1'),
    ('/chat/sub', '/chat/sub/'),
    ('/chat/dist', '/chat/dist/'),
])
def test_directory_redirects(server, path, location):
    status, headers, _ = get(server, path)
    assert status == 301
    assert headers['location'] == location


def test_directory_without_index_is_not_listed(server):
    status, _, body = get(server, '/chat/dist/')
    assert status == 404 and b'converse' not in body


def test_head(server, site):
    status, headers, body = get(server, '/chat/big.bin', method='HEAD')
    assert status == 200 and body == b''
    assert headers['content-length'] == str(BIG)
    assert 'etag' in headers and 'last-modified' in headers
    # The connection is still in step: a GET after it on the same socket.
    s = connect(server.http_port)
    r = Reader(s)
    s.sendall(request(method='HEAD', path='/chat/app.js') +
              request(path='/chat/app.js'))
    assert r.response(head=True)[2] == b''
    assert r.response()[2] == site[1]['app.js']
    s.close()


@pytest.mark.parametrize('method', ['POST', 'PUT', 'DELETE', 'OPTIONS'])
def test_other_methods(server, method):
    extra = 'Content-Length: 0\r\n' if method in ('POST', 'PUT') else ''
    status, headers, _ = get(server, '/chat/app.js', method=method,
                             extra=extra)
    assert status == 405
    assert set(m.strip() for m in headers['allow'].split(',')) == {
        'GET', 'HEAD'}


def test_missing(server):
    assert get(server, '/chat/nothing.js')[0] == 404
    assert get(server, '/chat/app.js/')[0] == 404  # a file as a directory
    assert get(server, '/chat/fifo.js')[0] == 404  # no FIFO, no device
    assert get(server, '/chatter')[0] == 404       # another path


# -- no way out --

@pytest.mark.parametrize('path,status', [
    ('/chat/../secret.txt', 400),
    ('/chat/sub/../../secret.txt', 400),
    ('/chat/%2e%2e/secret.txt', 400),
    ('/chat/%2E%2E/secret.txt', 400),
    ('/chat/.%2e/secret.txt', 400),
    ('/chat/sub/..%2f..%2fsecret.txt', 400),
    ('/chat/%2e%2e%2fsecret.txt', 400),
    ('/chat/./app.js', 400),
    ('/chat//app.js', 400),
    ('/chat/app.js%00.html', 400),
    ('/chat/%zz', 400),
    ('/chat/%2', 400),
    ('/chat/.hidden', 404),
    ('/chat/%2ehidden', 404),
    ('/chat/escape.txt', 404),
    ('/chat/escape-abs.txt', 404),
    ('/chat/outdir/x.js', 404),
])
def test_traversal_refused(server, path, status):
    got, _, body = get(server, path)
    assert got == status, (path, got, body)
    assert SECRET not in body and b'hidden' not in body


def test_link_inside_is_served(server, site):
    status, headers, body = get(server, '/chat/inside-link.js')
    assert status == 200 and body == site[1]['app.js']
    assert headers['content-type'].startswith('text/javascript')


# -- validators --

def test_if_none_match(server, site):
    _, headers, _ = get(server, '/chat/app.js')
    etag = headers['etag']
    for value in (etag, 'W/' + etag, '"x", ' + etag, '*'):
        status, h, body = get(server, '/chat/app.js',
                              extra='If-None-Match: %s\r\n' % value)
        assert status == 304 and body == b'', value
        assert h['etag'] == etag
        assert h['cache-control'] == 'public, max-age=7200'
        assert 'content-length' not in h
    status, _, body = get(server, '/chat/app.js',
                          extra='If-None-Match: "other"\r\n')
    assert status == 200 and body == site[1]['app.js']
    # If-None-Match decides alone (RFC 9110 §13.2.2).
    status, _, _ = get(server, '/chat/app.js', extra=(
        'If-None-Match: "other"\r\nIf-Modified-Since: %s\r\n'
        % headers['last-modified']))
    assert status == 200


def test_if_modified_since(server, site):
    _, headers, _ = get(server, '/chat/style.css')
    lm = headers['last-modified']
    status, h, body = get(server, '/chat/style.css',
                          extra='If-Modified-Since: %s\r\n' % lm)
    assert status == 304 and body == b'' and h['last-modified'] == lm
    status, _, body = get(server, '/chat/style.css', extra=(
        'If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n'))
    assert status == 200 and body == site[1]['style.css']
    for bad in ('yesterday', 'Sun, 06 Nov 1994 08:49:37 CET',
                'Sun, 32 Nov 1994 08:49:37 GMT'):
        status, _, _ = get(server, '/chat/style.css',
                           extra='If-Modified-Since: %s\r\n' % bad)
        assert status == 200, bad


def test_validators_follow_a_change(server, site):
    path = site[0] / 'changing.js'
    path.write_bytes(b'one')
    _, h1, b1 = get(server, '/chat/changing.js')
    path.write_bytes(b'two!')
    os.utime(path, (time.time() + 5, time.time() + 5))
    status, h2, b2 = get(server, '/chat/changing.js',
                         extra='If-None-Match: %s\r\n' % h1['etag'])
    assert (b1, status, b2) == (b'one', 200, b'two!')
    assert h2['etag'] != h1['etag']


# -- ranges --

def test_ranges(server, site):
    big = site[2]
    status, h, body = get(server, '/chat/big.bin',
                          extra='Range: bytes=10-19\r\n')
    assert status == 206 and body == big[10:20]
    assert h['content-range'] == 'bytes 10-19/%d' % BIG
    status, h, body = get(server, '/chat/big.bin',
                          extra='Range: bytes=-7\r\n')
    assert status == 206 and body == big[-7:]
    status, h, body = get(server, '/chat/big.bin',
                          extra='Range: bytes=%d-\r\n' % (BIG - 3))
    assert status == 206 and body == big[-3:]
    status, h, _ = get(server, '/chat/big.bin',
                       extra='Range: bytes=%d-\r\n' % BIG)
    assert status == 416 and h['content-range'] == 'bytes */%d' % BIG
    # Several ranges, or a malformed one: the whole file.
    status, _, body = get(server, '/chat/app.js',
                          extra='Range: bytes=0-1,3-4\r\n')
    assert status == 200 and body == site[1]['app.js']
    # If-Range with another validator: the whole (new) file.
    _, h, _ = get(server, '/chat/app.js')
    status, _, body = get(server, '/chat/app.js', extra=(
        'Range: bytes=0-3\r\nIf-Range: "old"\r\n'))
    assert status == 200 and body == site[1]['app.js']
    status, _, body = get(server, '/chat/app.js', extra=(
        'Range: bytes=0-3\r\nIf-Range: %s\r\n' % h['etag']))
    assert status == 206 and body == site[1]['app.js'][:4]


def test_big_file_while_serving(server, site):
    """A file larger than what the daemon queues at once arrives whole
    to a client that reads slowly, and the daemon answers others
    meanwhile (the disk is read on workers, piece by piece)."""
    s = connect(server.http_port, timeout=30)
    s.sendall(request(path='/chat/big.bin'))
    time.sleep(0.5)                     # the slow reader stalls
    status, _, body = get(server, '/chat/app.js')
    assert status == 200
    server.assert_serves()
    r = Reader(s)
    status, headers, body = r.response()
    s.close()
    assert status == 200 and len(body) == BIG
    assert hashlib.sha256(body).digest() == hashlib.sha256(
        site[2]).digest()


def test_client_leaving_mid_file(server):
    for _ in range(3):
        s = connect(server.http_port)
        s.sendall(request(path='/chat/big.bin'))
        s.recv(1000)
        s.close()
    assert get(server, '/chat/app.js')[0] == 200


# -- configuration --

def test_reload_moves_the_route(certificate, site, tmp_path):
    (tmp_path / 'd').mkdir()
    srv = WebchatServer(certificate, site[0], directory=tmp_path / 'd')
    srv.start()
    try:
        assert get(srv, '/chat/app.js')[0] == 200
        srv.webchat = 'webchat "/" "%s"' % site[0]
        srv.conf.write_text(srv.config_text())
        srv.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while get(srv, '/app.js')[0] != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        status, h, body = get(srv, '/')
        assert status == 200 and body == site[1]['index.html']
        assert get(srv, '/chat/app.js')[0] == 404
        # max-age 0 (the default is 1h): revalidated every time.
        _, h, _ = get(srv, '/app.js')
        assert h['cache-control'] == 'public, max-age=3600'
        # A directory that went away: the reload is refused, the old
        # configuration stays.
        srv.webchat = 'webchat "/" "%s"' % (tmp_path / 'none')
        srv.conf.write_text(srv.config_text())
        srv.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while 'reload failed' not in srv.stderr_text():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert 'cannot open directory' in srv.stderr_text()
        assert get(srv, '/app.js')[0] == 200
    finally:
        srv.stop()


@pytest.mark.parametrize('line,message', [
    ('webchat "/chat" "NONE"', 'webchat /chat: cannot open directory'),
    ('webchat "chat" "SITE"', "invalid webchat path 'chat'"),
    ('webchat "/a/../b" "SITE"', "invalid webchat path '/a/../b'"),
    ('webchat "/a b" "SITE"', "invalid webchat path '/a b'"),
    ('webchat "/upload/x" "SITE"',
     "webchat path '/upload/x' is within /upload"),
    ('webchat "/http-bind" "SITE"', "is within /http-bind"),
    ('webchat "/chat" "SITE" max-age soon', "invalid duration 'soon'"),
    ('webchat "/chat" "SITE" ttl 1', "unknown webchat option 'ttl'"),
    ('webchat "/chat"', 'usage: webchat PATH DIRECTORY'),
    ('webchat "/c" "SITE"\nwebchat "/c/" "SITE"',
     "webchat path '/c' given twice"),
])
def test_config_errors(certificate, site, tmp_path, line, message):
    srv = Server(certificate, directory=tmp_path)
    srv.c2s_port, srv.tls_port = 15999, 15998
    srv.extra = line.replace('SITE', str(site[0])).replace(
        'NONE', str(tmp_path / 'none'))
    srv.conf.write_text(srv.config_text())
    r = subprocess.run([XMPPD_BIN, '-n', '-f', str(srv.conf)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r.stdout
    assert message in r.stderr, r.stderr


# -- the web client in the box --

def test_converse_served_by_webchat(certificate, tmp_path):
    """Converse.js's dist served by webchat, in headless Chromium, logs
    in over the WebSocket of the same origin (skipped where the browser
    or npm cannot be had)."""
    from browser_helpers import browser_log, chromium, converse_page
    site = tmp_path / 'converse'
    site.mkdir()
    (tmp_path / 'd').mkdir()
    srv = WebchatServer(certificate, site, directory=tmp_path / 'd')
    srv.webchat = 'webchat "/chat" "%s"\nwebsocket on' % site
    srv.start()
    driver = None
    try:
        converse_page(site, {
            'websocket_url': 'ws://127.0.0.1:%d/xmpp-websocket'
                             % srv.http_port,
            'auto_login': True, 'jid': 'alice@localhost',
            'password': srv.users['alice@localhost'],
            'view_mode': 'fullscreen', 'discover_connection_methods': False,
            'loglevel': 'info'})
        status, h, body = get(srv, '/chat/dist/converse.min.js',
                              method='HEAD')
        assert status == 200
        assert h['content-type'] == 'text/javascript; charset=utf-8'
        assert int(h['content-length']) == os.path.getsize(
            site / 'dist' / 'converse.min.js')
        status, h, _ = get(srv, '/chat/dist/converse.min.css', method='HEAD')
        assert h['content-type'] == 'text/css; charset=utf-8'
        driver = chromium()
        driver.get('http://127.0.0.1:%d/chat/' % srv.http_port)
        end = time.time() + 40
        while time.time() < end:
            out = srv.ctl('sessions').stdout
            if 'alice@localhost' in out:
                break
            time.sleep(0.3)
        assert 'alice@localhost' in out, (out, browser_log(driver)[-20:])
        # The page and the client came through webchat.
        log = srv.stderr_text()
        assert 'GET /chat/ -> 200' in log
        assert 'GET /chat/dist/converse.min.js -> 200' in log
    finally:
        if driver is not None:
            driver.quit()
        srv.stop()
