"""XEP-0363 HTTP file upload (issue 17, part 5) against a real daemon
with an http listener: the upload.localhost service in disco, slot
requests and their errors (file-too-large with max-file-size, bad file
names, quotas with retry), PUT to the signed URL (size, type, expiry and
signature checked, a second PUT refused) and GET/HEAD byte for byte with
Range, the headers that keep a browser from running a download, CORS and
its preflight, expiry, account deletion and xmppctl upload list/purge."""

import http.client
import os
import time
import urllib.parse
import xml.etree.ElementTree as ET

import pytest

from conftest import Server, free_ports
from im_helpers import IMFactory, form_fields, fresh_users
from xmpp_raw import NS_CLIENT, assert_stanza_error, q, tostr

NS_UPLOAD = 'urn:xmpp:http:upload:0'
NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info'
NS_DISCO_ITEMS = 'http://jabber.org/protocol/disco#items'
NS_XDATA = 'jabber:x:data'
NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas'
SERVICE = 'upload.localhost'
MAX = 65536


class UploadServer(Server):
    """A daemon with an http listener and the upload service."""

    def __init__(self, certificate, upload_limits=None, **kw):
        kw.setdefault('limits', {})
        kw['limits'].update({'upload-file-size': MAX,
                             'upload-files-per-day': 1000})
        kw['limits'].update(upload_limits or {})
        super().__init__(certificate, **kw)
        self.http_port = self.https_port = None

    def config_text(self):
        return super().config_text() + '\n'.join([
            'listen http %d address 127.0.0.1' % self.http_port,
            'listen https %d address 127.0.0.1' % self.https_port,
            'upload-url "http://localhost:%d/"' % self.http_port,
            'upload-dir "%s"' % (self.dir / 'files'), '']) + '\n'

    def start(self, create_users=True):
        self.http_port, self.https_port = free_ports(2)
        return super().start(create_users)


@pytest.fixture(scope='module')
def server(certificate):
    srv = UploadServer(certificate).start()
    yield srv
    srv.stop()


@pytest.fixture
def im(server):
    f = IMFactory(server)
    yield f
    f.close_all()


def request_slot(c, filename='photo.jpg', size=10, ctype='image/jpeg'):
    attrs = "filename='%s' size='%s'" % (filename, size)
    if ctype is not None:
        attrs += " content-type='%s'" % ctype
    return c.iq('get', "<request xmlns='%s' %s/>" % (NS_UPLOAD, attrs),
                to=SERVICE)


def slot(c, **kw):
    el = request_slot(c, **kw)
    assert el.get('type') == 'result', tostr(el)
    s = el.find(q(NS_UPLOAD, 'slot'))
    put = s.find(q(NS_UPLOAD, 'put')).get('url')
    get = s.find(q(NS_UPLOAD, 'get')).get('url')
    assert s.find(q(NS_UPLOAD, 'put')).find(q(NS_UPLOAD, 'header')) is None
    return put, get


def fetch(server, method, url, body=None, headers=None):
    u = urllib.parse.urlsplit(url)
    assert u.port == server.http_port, url
    conn = http.client.HTTPConnection('127.0.0.1', server.http_port,
                                      timeout=10)
    try:
        path = u.path + ('?' + u.query if u.query else '')
        h = {'Host': 'localhost:%d' % server.http_port}
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def put(server, url, data, ctype='image/jpeg', headers=None):
    h = {'Content-Type': ctype} if ctype else {}
    h.update(headers or {})
    return fetch(server, 'PUT', url, data, h)


def upload(server, c, data, filename='photo.jpg', ctype='image/jpeg'):
    put_url, get_url = slot(c, filename=filename, size=len(data),
                            ctype=ctype)
    status, _, body = put(server, put_url, data, ctype)
    assert status == 201, body
    return put_url, get_url


def test_disco_items_and_info(server, im):
    c = im('alice@localhost')
    el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_ITEMS,
                 to='localhost')
    jids = [i.get('jid') for i in el.find(q(NS_DISCO_ITEMS, 'query'))]
    assert SERVICE in jids, tostr(el)
    el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=SERVICE)
    query = el.find(q(NS_DISCO_INFO, 'query'))
    ids = [(i.get('category'), i.get('type'))
           for i in query.findall(q(NS_DISCO_INFO, 'identity'))]
    assert ids == [('store', 'file')]
    features = [f.get('var') for f in query.findall(q(NS_DISCO_INFO,
                                                      'feature'))]
    assert NS_UPLOAD in features
    forms = query.findall(q(NS_XDATA, 'x'))
    assert len(forms) == 1
    fields = form_fields(forms[0])
    assert fields['FORM_TYPE'] == [NS_UPLOAD]
    assert fields['max-file-size'] == [str(MAX)]


def test_put_then_get_byte_exact(server, im):
    c = im('alice@localhost')
    data = os.urandom(5000) + b'\0\r\n' + bytes(range(256))
    put_url, get_url = upload(server, c, data, filename='a b+ü.jpg')
    assert '/upload/' in get_url and 'a%20b%2B%C3%BC.jpg' in get_url
    assert urllib.parse.urlsplit(get_url).path == \
        urllib.parse.urlsplit(put_url).path
    status, h, body = fetch(server, 'GET', get_url)
    assert status == 200
    assert body == data
    assert h['content-type'] == 'image/jpeg'
    assert h['content-length'] == str(len(data))
    assert h['x-content-type-options'] == 'nosniff'
    assert "default-src 'none'" in h['content-security-policy']
    assert h['access-control-allow-origin'] == '*'
    assert 'content-disposition' not in h      # an image shows inline
    # HEAD: the same fields, no body.
    status, h2, body = fetch(server, 'HEAD', get_url)
    assert status == 200 and body == b''
    assert h2['content-length'] == str(len(data))
    assert h2['content-type'] == 'image/jpeg'
    # The file is there, under its token, nothing half-written beside it.
    files = os.listdir(server.dir / 'files')
    assert not [f for f in files if f.startswith('.tmp')]


def test_range(server, im):
    c = im('alice@localhost')
    data = bytes(range(256)) * 40
    _, get_url = upload(server, c, data, filename='r.bin',
                        ctype='application/octet-stream')
    status, h, body = fetch(server, 'GET', get_url, headers={
        'Range': 'bytes=10-19'})
    assert status == 206 and body == data[10:20]
    assert h['content-range'] == 'bytes 10-19/%d' % len(data)
    status, h, body = fetch(server, 'GET', get_url, headers={
        'Range': 'bytes=-7'})
    assert status == 206 and body == data[-7:]
    status, h, body = fetch(server, 'GET', get_url, headers={
        'Range': 'bytes=10000-'})
    assert status == 206 and body == data[10000:]
    status, h, body = fetch(server, 'GET', get_url, headers={
        'Range': 'bytes=%d-' % len(data)})
    assert status == 416
    assert h['content-range'] == 'bytes */%d' % len(data)
    # Several ranges: the whole file (RFC 9110 §14.2 lets us ignore it).
    status, h, body = fetch(server, 'GET', get_url, headers={
        'Range': 'bytes=0-1,5-6'})
    assert status == 200 and body == data
    # A type a browser could run comes as an attachment.
    assert h['content-disposition'].startswith('attachment')


@pytest.mark.parametrize('ctype', ['text/html', 'image/svg+xml',
                                   'application/javascript', 'text/xml'])
def test_active_types_are_attachments(server, im, ctype):
    c = im('alice@localhost')
    _, get_url = upload(server, c, b'<script>alert(1)</script>',
                        filename='x.html', ctype=ctype)
    status, h, body = fetch(server, 'GET', get_url)
    assert status == 200
    assert h['content-type'] == ctype
    assert h['content-disposition'].startswith('attachment')
    assert h['x-content-type-options'] == 'nosniff'
    assert "default-src 'none'" in h['content-security-policy']


def test_cors_preflight(server, im):
    c = im('alice@localhost')
    put_url, _ = slot(c)
    status, h, body = fetch(server, 'OPTIONS', put_url, headers={
        'Origin': 'https://web.example',
        'Access-Control-Request-Method': 'PUT',
        'Access-Control-Request-Headers': 'content-type'})
    assert status in (200, 204)
    assert h['access-control-allow-origin'] == '*'
    assert 'PUT' in h['access-control-allow-methods']
    assert 'content-type' in h['access-control-allow-headers'].lower()


def test_put_refused(server, im):
    c = im('alice@localhost')
    data = b'0123456789'
    put_url, get_url = slot(c, size=len(data))
    # Size other than announced: larger 413, smaller 400.
    assert put(server, put_url, data + b'x')[0] == 413
    assert put(server, put_url, data[:-1])[0] == 400
    # Another type than announced.
    assert put(server, put_url, data, ctype='text/html')[0] == 400
    assert put(server, put_url, data, ctype=None)[0] == 400
    # A forged signature, or one moved to another expiry or token.
    u = urllib.parse.urlsplit(put_url)
    qs = dict(urllib.parse.parse_qsl(u.query))
    sig = qs['s']
    forged = sig[:-1] + ('0' if sig[-1] != '0' else '1')
    bad = put_url.replace('s=' + sig, 's=' + forged)
    assert put(server, bad, data)[0] == 403
    later = put_url.replace('e=' + qs['e'], 'e=%d' % (int(qs['e']) + 60))
    assert put(server, later, data)[0] == 403
    nosig = put_url.split('?')[0]
    assert put(server, nosig, data)[0] == 403
    # Another slot's token with this signature.
    other, _ = slot(c, size=len(data))
    moved = other.split('?')[0] + '?' + u.query
    assert put(server, moved, data)[0] == 403
    # Nothing was stored: GET finds nothing.
    assert fetch(server, 'GET', get_url)[0] == 404
    # Then the right PUT works, once.
    assert put(server, put_url, data)[0] == 201
    assert put(server, put_url, data)[0] == 409
    assert fetch(server, 'GET', get_url)[2] == data
    # Another name under the same token is not the file.
    wrong = get_url.rsplit('/', 1)[0] + '/other.jpg'
    assert fetch(server, 'GET', wrong)[0] == 404


def test_expired_slot_refused(server, im):
    c = im('alice@localhost')
    put_url, _ = slot(c, size=3)
    u = urllib.parse.urlsplit(put_url)
    qs = dict(urllib.parse.parse_qsl(u.query))
    past = put_url.replace('e=' + qs['e'], 'e=%d' % (time.time() - 1))
    # Expired: refused whatever the signature (here it is also wrong).
    assert put(server, past, b'abc')[0] == 403


def test_too_large(server, im):
    c = im('alice@localhost')
    el = request_slot(c, size=MAX + 1)
    assert_stanza_error(el, 'iq', 'not-acceptable', etype='modify')
    err = el.find(q(NS_CLIENT, 'error'))
    ftl = err.find(q(NS_UPLOAD, 'file-too-large'))
    assert ftl is not None, tostr(el)
    assert ftl.find(q(NS_UPLOAD, 'max-file-size')).text == str(MAX)


@pytest.mark.parametrize('name', ['a/b', '..', '.', 'x\\y'])
def test_bad_filename(server, im, name):
    c = im('alice@localhost')
    el = request_slot(c, filename=name)
    assert_stanza_error(el, 'iq', 'not-acceptable')


def test_bad_requests(server, im):
    c = im('alice@localhost')
    el = request_slot(c, size='-1')
    assert_stanza_error(el, 'iq', 'bad-request')
    el = request_slot(c, size='0')
    assert_stanza_error(el, 'iq', 'bad-request')
    el = request_slot(c, ctype='nonsense')
    assert_stanza_error(el, 'iq', 'bad-request')
    # Without content-type: the file is served as octet-stream.
    put_url, get_url = slot(c, size=2, ctype=None)
    assert put(server, put_url, b'hi', ctype=None)[0] == 201
    status, h, body = fetch(server, 'GET', get_url)
    assert body == b'hi'
    assert h['content-type'] == 'application/octet-stream'
    assert h['content-disposition'].startswith('attachment')


def wait_until(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def file_count(server):
    return len([f for f in os.listdir(server.dir / 'files')
                if not f.startswith('.')])


def test_account_deletion_removes_files(server, im):
    u, = fresh_users(server, 1)
    c = im(u)
    _, get1 = upload(server, c, b'first file')
    _, get2 = upload(server, c, b'second file', filename='2.jpg')
    other = im('bob@localhost')
    _, keep = upload(server, other, b'bob keeps this')
    before = file_count(server)
    c.closing = True
    r = server.ctl('deluser', u)
    assert r.returncode == 0, r.stderr
    assert wait_until(lambda: fetch(server, 'GET', get1)[0] == 404)
    assert fetch(server, 'GET', get2)[0] == 404
    assert wait_until(lambda: file_count(server) == before - 2)
    assert fetch(server, 'GET', keep)[2] == b'bob keeps this'


@pytest.fixture(scope='module')
def quota_server(certificate):
    srv = UploadServer(certificate, upload_limits={
        'upload-quota': 100, 'upload-files-per-day': 3,
        'upload-disk': 150}).start()
    yield srv
    srv.stop()


def test_quotas(quota_server):
    f = IMFactory(quota_server)
    try:
        a = f('alice@localhost')
        b = f('bob@localhost')
        # Bytes per user: slots handed out count, used or not.
        slot(a, size=60)
        el = request_slot(a, size=60)
        assert_stanza_error(el, 'iq', 'resource-constraint', etype='wait')
        # Whole disk: 60 + 60 fit in 150, 31 more do not.
        slot(b, size=60)
        el = request_slot(b, size=31)
        assert_stanza_error(el, 'iq', 'resource-constraint', etype='wait')
        # Files per day, with when to retry (XEP-0363 §4).
        slot(a, size=1)
        slot(a, size=1)
        el = request_slot(a, size=1)
        assert_stanza_error(el, 'iq', 'resource-constraint', etype='wait')
        retry = el.find(q(NS_CLIENT, 'error')).find(q(NS_UPLOAD, 'retry'))
        assert retry is not None, tostr(el)
        stamp = time.mktime(time.strptime(retry.get('stamp'),
                                          '%Y-%m-%dT%H:%M:%SZ')) \
            - time.timezone
        assert abs(stamp - (time.time() + 86400)) < 60
    finally:
        f.close_all()


def test_expiry(certificate):
    srv = UploadServer(certificate,
                       upload_limits={'upload-expiry': '1s'}).start()
    f = IMFactory(srv)
    try:
        c = f('alice@localhost')
        data = b'short-lived'
        _, get_url = upload(srv, c, data)
        assert fetch(srv, 'GET', get_url)[2] == data
        assert wait_until(lambda: fetch(srv, 'GET', get_url)[0] == 404,
                          timeout=6)
        assert wait_until(lambda: file_count(srv) == 0)
    finally:
        f.close_all()
        srv.stop()


def ctl_json(server, *args):
    import json
    r = server.ctl('--json', *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_xmppctl_upload_list_and_purge(certificate):
    srv = UploadServer(certificate).start()
    f = IMFactory(srv)
    try:
        a = f('alice@localhost')
        b = f('bob@localhost')
        _, get_a = upload(srv, a, b'alice data', filename='a.txt',
                          ctype='text/plain')
        _, get_b = upload(srv, b, b'bob data', filename='b.txt',
                          ctype='text/plain')
        put_p, _ = slot(a, filename='pending.bin', size=5,
                        ctype='application/octet-stream')
        rows = ctl_json(srv, 'upload', 'list', 'alice@localhost')
        by_name = {r['filename']: r for r in rows}
        assert set(by_name) == {'a.txt', 'pending.bin'}
        assert by_name['a.txt']['jid'] == 'alice@localhost'
        assert by_name['a.txt']['size'] == len(b'alice data')
        assert by_name['a.txt']['content_type'] == 'text/plain'
        assert by_name['a.txt']['completed']
        assert not by_name['pending.bin']['completed']
        assert by_name['a.txt']['token'] in get_a
        everyone = ctl_json(srv, 'upload', 'list')
        assert {r['filename'] for r in everyone} == {'a.txt', 'b.txt',
                                                   'pending.bin'}
        # Text output too: a dash for a file not yet come.
        r = srv.ctl('upload', 'list', 'alice@localhost')
        assert r.returncode == 0, r.stderr
        lines = {ln.split('\t')[2]: ln.split('\t')
                 for ln in r.stdout.splitlines()[1:]}
        assert lines['pending.bin'][6] == '-', r.stdout
        assert lines['a.txt'][6] != '-', r.stdout
        # Purge one account.
        assert ctl_json(srv, 'upload', 'purge', 'alice@localhost') == {
            'files': 2}
        assert wait_until(lambda: fetch(srv, 'GET', get_a)[0] == 404)
        assert put(srv, put_p, b'12345',
                   ctype='application/octet-stream')[0] == 403
        assert fetch(srv, 'GET', get_b)[2] == b'bob data'
        # --older-than: nothing is a day old; everything is 0s old.
        r = srv.ctl('upload', 'purge', '--older-than', '1d')
        assert r.returncode == 0 and r.stdout == '0 files purged\n', (
            r.stdout)
        time.sleep(2.1)     # whole seconds: older than 1 at last
        r = srv.ctl('upload', 'purge', '--older-than', '1')
        assert r.returncode == 0 and r.stdout == '1 file purged\n', (
            r.stdout)
        assert wait_until(lambda: fetch(srv, 'GET', get_b)[0] == 404)
        assert wait_until(lambda: file_count(srv) == 0)
        assert ctl_json(srv, 'upload', 'list') == []
        # Usage errors.
        r = srv.ctl('upload', 'purge')
        assert r.returncode != 0
        r = srv.ctl('upload', 'purge', 'alice@localhost', '--older-than',
                    '1d')
        assert r.returncode != 0
        r = srv.ctl('upload', 'purge', '--older-than', 'soon')
        assert r.returncode != 0
    finally:
        f.close_all()
        srv.stop()


def test_concurrent_puts_one_wins(server, im):
    """Two PUTs racing for one slot: the first complete file is linked
    into place, the other finds the name taken (409)."""
    import threading
    c = im('alice@localhost')
    data = os.urandom(MAX)
    put_url, get_url = slot(c, size=len(data), ctype='image/png')
    results = []

    def one():
        results.append(put(server, put_url, data, ctype='image/png')[0])

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201, 409, 409, 409], results
    assert fetch(server, 'GET', get_url)[2] == data


def test_large_file_streamed(certificate):
    """A file larger than the connection's output limit (4 MiB by
    default) goes out in pieces as the client reads."""
    srv = UploadServer(certificate,
                       upload_limits={'upload-file-size': '6M'}).start()
    f = IMFactory(srv)
    try:
        c = f('alice@localhost')
        data = os.urandom(5 * 1024 * 1024 + 123)
        _, get_url = upload(srv, c, data, filename='big.bin',
                            ctype='application/octet-stream')
        status, h, body = fetch(srv, 'GET', get_url)
        assert status == 200 and h['content-length'] == str(len(data))
        assert body == data
        status, h, body = fetch(srv, 'GET', get_url, headers={
            'Range': 'bytes=1000000-4999999'})
        assert status == 206 and body == data[1000000:5000000]
        # Over upload-file-size: refused by the HTTP layer before the
        # body is read.
        el = request_slot(c, size=6 * 1024 * 1024 + 1)
        assert_stanza_error(el, 'iq', 'not-acceptable')
    finally:
        f.close_all()
        srv.stop()


def test_slixmpp_xep_0363_upload(server):
    """Debian's slixmpp uploads with its xep_0363 plugin (over aiohttp):
    it finds upload.localhost by disco, reads max-file-size, requests a
    slot and PUTs; the GET URL it returns serves the bytes."""
    import asyncio
    import io
    pytest.importorskip('aiohttp', reason='python3-aiohttp (slixmpp '
                        'xep_0363 uploads with it) is not installed')
    from im_helpers import run_async, slixmpp_client

    data = os.urandom(3000)
    got = {}
    clients = []

    async def scenario(loop):
        x = slixmpp_client(server, 'alice@localhost')
        clients.append(x)
        x.register_plugin('xep_0030')
        x.register_plugin('xep_0363')
        started = loop.create_future()
        x.add_event_handler('session_start',
                            lambda _e: started.done() or
                            started.set_result(True))
        x.connect(('127.0.0.1', server.c2s_port), force_starttls=True)
        await started
        # The plugin's own discovery (xep_0030 get_info_from_domain)
        # passes coroutines to asyncio.wait, which Python 3.11 refuses
        # (slixmpp 1.8.3): discover as it would, with slixmpp's disco,
        # and hand it the service and its max-file-size.
        items = await x['xep_0030'].get_items(jid='localhost', timeout=10)
        for jid, _node, _name in items['disco_items']['items']:
            info = await x['xep_0030'].get_info(jid=jid, timeout=10)
            if 'urn:xmpp:http:upload:0' in info['disco_info']['features']:
                up = x.plugin['xep_0363']
                up.upload_service = info['from']
                for form in info['disco_info'].iterables:
                    values = form['values']
                    if values['FORM_TYPE'] == ['urn:xmpp:http:upload:0']:
                        up.max_file_size = int(values['max-file-size'])
        got['service'] = str(x.plugin['xep_0363'].upload_service)
        got['max'] = x.plugin['xep_0363'].max_file_size
        got['url'] = await x.plugin['xep_0363'].upload_file(
            'slix.png', size=len(data), content_type='image/png',
            input_file=io.BytesIO(data), timeout=10)
        x.disconnect()
        await asyncio.sleep(0.1)

    try:
        run_async(scenario, clients)
    finally:
        asyncio.set_event_loop_policy(None)
    assert got['service'] == SERVICE
    assert got['max'] == MAX
    assert got['url'].endswith('/slix.png'), got
    status, h, body = fetch(server, 'GET', got['url'])
    assert status == 200 and body == data
    assert h['content-type'] == 'image/png'


def test_host_field(server, im):
    """The Host field may name the upload service (or upload-url's
    host); any other name is 421."""
    c = im('alice@localhost')
    _, get_url = upload(server, c, b'by service name')
    assert fetch(server, 'GET', get_url, headers={
        'Host': '%s:%d' % (SERVICE, server.http_port)})[2] == \
        b'by service name'
    assert fetch(server, 'GET', get_url, headers={
        'Host': 'elsewhere.example'})[0] == 421


def reload(srv):
    import signal
    srv.conf.write_text(srv.config_text())
    mark = len(srv.stderr_text())
    srv.signal(signal.SIGHUP)
    assert wait_until(lambda: 'configuration and certificates reloaded'
                      in srv.stderr_text()[mark:]), srv.stderr_tail()


def test_reload(certificate):
    """A reload applies a new upload-file-size (disco form, slots, the
    HTTP body limit); without upload-url the service and /upload/ go,
    and come back with it."""
    srv = UploadServer(certificate).start()
    f = IMFactory(srv)
    try:
        c = f('alice@localhost')
        srv.limits['upload-file-size'] = MAX * 2
        reload(srv)
        el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_INFO,
                     to=SERVICE)
        fields = form_fields(el.find(q(NS_DISCO_INFO, 'query'))
                             .find(q(NS_XDATA, 'x')))
        assert fields['max-file-size'] == [str(MAX * 2)]
        data = os.urandom(MAX + 1)
        _, get_url = upload(srv, c, data, filename='bigger.bin',
                            ctype='application/octet-stream')
        # Off: no service in disco, /upload/ is 404.
        text = UploadServer.config_text
        UploadServer.config_text = lambda self: Server.config_text(self) + \
            'listen http %d address 127.0.0.1\n' % self.http_port
        try:
            reload(srv)
        finally:
            UploadServer.config_text = text
        el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_ITEMS,
                     to='localhost')
        jids = [i.get('jid') for i in el.find(q(NS_DISCO_ITEMS, 'query'))]
        assert SERVICE not in jids
        el = request_slot(c)
        assert el.get('type') == 'error', tostr(el)
        assert fetch(srv, 'GET', get_url)[0] == 404
        # Back on: the file is served again.
        reload(srv)
        assert fetch(srv, 'GET', get_url)[2] == data
        slot(c)
    finally:
        f.close_all()
        srv.stop()


def test_https_listener(server, im):
    """The same /upload/ paths are served on an https listener (the
    public URL may point at either, or at a proxy)."""
    import ssl
    c = im('alice@localhost')
    data = os.urandom(2048)
    put_url, get_url = slot(c, size=len(data), ctype='image/webp')
    ctx = ssl.create_default_context(cafile=str(server.cert))
    for method, url, body, want in (('PUT', put_url, data, 201),
                                    ('GET', get_url, None, 200)):
        u = urllib.parse.urlsplit(url)
        conn = http.client.HTTPSConnection('localhost', server.https_port,
                                           context=ctx, timeout=10)
        try:
            conn.request(method, u.path + ('?' + u.query if u.query
                                           else ''), body=body,
                         headers={'Content-Type': 'image/webp'})
            r = conn.getresponse()
            got = r.read()
            assert r.status == want, got
        finally:
            conn.close()
    assert got == data
    assert r.getheader('Access-Control-Allow-Origin') == '*'


def test_module_off(certificate):
    """With upload-url set and "module upload off": no service, nothing
    advertised, /upload/ answers 404."""
    srv = UploadServer(certificate, extra='module upload off').start()
    f = IMFactory(srv)
    try:
        c = f('alice@localhost')
        el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_ITEMS,
                     to='localhost')
        jids = [i.get('jid') for i in el.find(q(NS_DISCO_ITEMS, 'query'))]
        assert SERVICE not in jids
        el = request_slot(c)
        assert el.get('type') == 'error', tostr(el)
        url = 'http://localhost:%d/upload/%s/x.jpg' % (srv.http_port,
                                                      '0' * 32)
        assert fetch(srv, 'GET', url)[0] == 404
        assert fetch(srv, 'OPTIONS', url)[0] == 404
    finally:
        f.close_all()
        srv.stop()


def raw_http(server, data, timeout=10):
    """Send data on one connection, return everything read until the
    server closes it or stays silent for a moment."""
    import socket
    s = socket.create_connection(('127.0.0.1', server.http_port),
                                 timeout=timeout)
    try:
        s.sendall(data)
        return read_responses(s)
    finally:
        s.close()


def read_responses(s, quiet=1.0):
    import socket
    out = b''
    s.settimeout(quiet)
    while True:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return out
        if not chunk:
            return out
        out += chunk


def put_request(server, url, body, extra=b'', length=True,
                ctype=b'image/jpeg'):
    u = urllib.parse.urlsplit(url)
    head = b'PUT %s?%s HTTP/1.1\r\nHost: localhost:%d\r\n' % (
        u.path.encode(), u.query.encode(), server.http_port)
    head += b'Content-Type: ' + ctype + b'\r\n' + extra
    if length:
        head += b'Content-Length: %d\r\n' % len(body)
    return head + b'\r\n' + body


def chunked(body, size=7):
    out = b''
    for i in range(0, len(body), size):
        piece = body[i:i + size]
        out += b'%x\r\n%s\r\n' % (len(piece), piece)
    return out + b'0\r\n\r\n'


def test_put_body_streamed_keep_alive(server, im):
    """The body of a PUT goes to disk as it arrives (the HTTP layer
    holds no whole body): a PUT refused before its body is read has
    that body read and dropped, and the connection goes on; a chunked
    body of the slot's size is stored, one longer is refused with 413."""
    c = im('alice@localhost')
    data = os.urandom(40000)
    put_url, get_url = slot(c, size=len(data))
    u = urllib.parse.urlsplit(put_url)
    qs = dict(urllib.parse.parse_qsl(u.query))
    bad = put_url.replace('s=' + qs['s'], 's=' + '0' * 64)
    get = b'GET %s HTTP/1.1\r\nHost: localhost:%d\r\n\r\n' % (
        urllib.parse.urlsplit(get_url).path.encode(), server.http_port)
    # Refused (forged signature), then on the same connection the right
    # PUT, then a GET of the file: three answers, in order.
    out = raw_http(server, put_request(server, bad, data) +
                   put_request(server, put_url, data) + get)
    assert out.startswith(b'HTTP/1.1 403 '), out[:200]
    assert out.count(b'HTTP/1.1 ') == 3, out[:600]
    i = out.index(b'HTTP/1.1 201 ')
    j = out.index(b'HTTP/1.1 200 ')
    assert 0 < i < j, out[:600]
    assert out.endswith(data)
    # Chunked, in small chunks: stored byte for byte.
    data2 = os.urandom(3000)
    put2, get2 = slot(c, size=len(data2))
    out = raw_http(server, put_request(
        server, put2, chunked(data2), b'Transfer-Encoding: chunked\r\n',
        length=False))
    assert out.startswith(b'HTTP/1.1 201 '), out[:200]
    assert fetch(server, 'GET', get2)[2] == data2
    # Chunked and longer than the slot: 413, nothing stored.
    put3, get3 = slot(c, size=100)
    out = raw_http(server, put_request(
        server, put3, chunked(b'x' * 150), b'Transfer-Encoding: chunked\r\n',
        length=False))
    assert out.startswith(b'HTTP/1.1 413 '), out[:200]
    assert fetch(server, 'GET', get3)[0] == 404
    # Chunked and shorter: 400.
    out = raw_http(server, put_request(
        server, put3, chunked(b'x' * 99), b'Transfer-Encoding: chunked\r\n',
        length=False))
    assert out.startswith(b'HTTP/1.1 400 '), out[:200]
    assert put(server, put3, b'y' * 100)[0] == 201


def test_put_client_leaves_mid_body(server, im):
    """A client that goes away halfway through its body leaves no
    temporary file behind, and the slot can still be filled."""
    import socket
    c = im('alice@localhost')
    data = os.urandom(MAX)
    put_url, get_url = slot(c, size=len(data))
    req = put_request(server, put_url, data)
    s = socket.create_connection(('127.0.0.1', server.http_port),
                                 timeout=10)
    s.sendall(req[:len(req) - len(data) // 2])
    time.sleep(0.3)
    s.close()
    files = server.dir / 'files'
    assert wait_until(lambda: not [f for f in os.listdir(files)
                                   if f.startswith('.tmp-')]), \
        os.listdir(files)
    assert fetch(server, 'GET', get_url)[0] == 404
    assert put(server, put_url, data)[0] == 201
    assert fetch(server, 'GET', get_url)[2] == data


def test_http_layer_errors_carry_cors(server, im):
    """The refusals the HTTP layer makes itself on the upload route
    (405, 413, 400) carry the CORS fields, so that a web client can
    read them; other routes' do not."""
    c = im('alice@localhost')
    put_url, _ = slot(c, size=10)
    path = urllib.parse.urlsplit(put_url).path.encode()
    host = b'Host: localhost:%d\r\n' % server.http_port

    def fields(resp):
        head = resp.split(b'\r\n\r\n', 1)[0].decode('latin-1')
        return {ln.split(':', 1)[0].strip().lower():
                ln.split(':', 1)[1].strip()
                for ln in head.split('\r\n')[1:] if ':' in ln}

    # 405: a method the route does not take.
    out = raw_http(server, b'DELETE ' + path + b' HTTP/1.1\r\n' + host +
                   b'\r\n')
    assert out.startswith(b'HTTP/1.1 405 '), out[:200]
    h = fields(out)
    assert h['access-control-allow-origin'] == '*'
    assert 'PUT' in h['access-control-allow-methods']
    assert 'PUT' in h['allow']
    # 413: a body larger than upload-file-size, refused unread.
    out = raw_http(server, b'PUT ' + path + b' HTTP/1.1\r\n' + host +
                   b'Content-Length: %d\r\n\r\n' % (MAX + 1))
    assert out.startswith(b'HTTP/1.1 413 '), out[:200]
    assert fields(out)['access-control-allow-origin'] == '*'
    # 400: a broken chunked body.
    out = raw_http(server, b'PUT ' + path + b' HTTP/1.1\r\n' + host +
                   b'Transfer-Encoding: chunked\r\n\r\nzz\r\n')
    assert out.startswith(b'HTTP/1.1 400 '), out[:200]
    assert fields(out)['access-control-allow-origin'] == '*'
    # Not on another route (no route at all: 404 without them).
    out = raw_http(server, b'GET /nothing-here HTTP/1.1\r\n' + host +
                   b'\r\n')
    assert out.startswith(b'HTTP/1.1 404 '), out[:200]
    assert 'access-control-allow-origin' not in fields(out)
