"""The web checks of the Conversations compliance tester, made the same
way against what `make run` serves: xmppd started with no configuration
file (the embedded default, its fixed ports 5222, 5223, 5280, 5443 and
7777) in a directory holding var/ as `make var` makes it.

    xep0065       a service in the server's disco#items with the identity
                  proxy/bytestreams and the feature
                  http://jabber.org/protocol/bytestreams, whose
                  bytestreams query answers with a <streamhost/> (jid,
                  host, port); here also a SOCKS5 handshake at that port

    xep0363       an upload service in the server's disco#items; a slot
                  for hello.png (1234 bytes, image/png); here also the
                  PUT and the GET of those bytes
    xep0363_cors  OPTIONS on the PUT URL with Origin,
                  Access-Control-Request-Method: PUT and
                  Access-Control-Request-Headers: content-type; the answer
                  carries Access-Control-Allow-Origin, -Methods, -Headers
    xep0156       /.well-known/host-meta and host-meta.json, over http and
                  https: 200 with Access-Control-Allow-Origin: *, at least
                  one link, and for each link: a ws(s) URL answers a GET
                  with Upgrade: websocket (and no key) with a 2xx, an
                  http(s) URL answers HEAD with Access-Control-Allow-Origin *

The tester asks the standard ports (443, 80); here the ports of the
default configuration are asked instead.  Skipped, saying which, when one
of those ports is taken on this machine.  The exchange is printed
(pytest -s) for the record."""

import http.client
import json
import os
import shutil
import socket
import ssl
import urllib.parse
import xml.etree.ElementTree as ET

import pytest

from conftest import XMPPD_BIN, Server
from im_helpers import IMFactory
from xmpp_raw import q, tostr

NS_DISCO_ITEMS = 'http://jabber.org/protocol/disco#items'
NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info'
NS_UPLOAD = 'urn:xmpp:http:upload:0'
NS_BS = 'http://jabber.org/protocol/bytestreams'
NS_XRD = 'http://docs.oasis-open.org/ns/xri/xrd-1.0'
RELS = ('urn:xmpp:alt-connections:xbosh',
        'urn:xmpp:alt-connections:websocket')
PORTS = {'c2s': 5222, 'c2s-tls': 5223, 'http': 5280, 'https': 5443,
         'proxy65': 7777}
REPORT = []


def note(line):
    REPORT.append(line)
    print(line)
    path = os.environ.get('XMPPD_TEST_ARTIFACTS')
    if path:
        with open(os.path.join(path, 'caas-web-checks.txt'), 'a') as f:
            f.write(line + '\n')


class MakeRunServer(Server):
    """xmppd -d with no -f, in a directory with var/localhost.crt and
    .key: the configuration `make run` uses."""

    def __init__(self, certificate):
        super().__init__(certificate)
        var = self.dir / 'var'
        var.mkdir()
        shutil.copy(certificate[0], var / 'localhost.crt')
        shutil.copy(certificate[1], var / 'localhost.key')
        os.chmod(var / 'localhost.key', 0o600)
        self.sock = var / 'xmppd.sock'

    def prepare(self):
        for what, port in PORTS.items():
            s = socket.socket()
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(('127.0.0.1', port))
            except OSError as e:
                pytest.skip('port %d (%s in the default configuration) is '
                            'taken here: %s' % (port, what, e))
            finally:
                s.close()
        self.c2s_port, self.tls_port = PORTS['c2s'], PORTS['c2s-tls']
        return [XMPPD_BIN, '-d']


@pytest.fixture(scope='module')
def made(certificate):
    srv = MakeRunServer(certificate).start()
    yield srv
    srv.stop()


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def request(url, method='GET', headers=None, body=None):
    """(status, headers with lower-case names, body) of one request."""
    u = urllib.parse.urlsplit(url)
    if u.scheme in ('https', 'wss'):
        c = http.client.HTTPSConnection(u.hostname, u.port or 443,
                                        context=tls_context(), timeout=10)
    else:
        c = http.client.HTTPConnection(u.hostname, u.port or 80,
                                       timeout=10)
    try:
        c.request(method, u.path + ('?' + u.query if u.query else ''),
                  body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        note('%s %s -> %d %s' % (method, url, r.status, ', '.join(
            '%s: %s' % kv for kv in r.getheaders()
            if kv[0].lower().startswith('access-control'))))
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def test_xep0065_proxy(made):
    f = IMFactory(made)
    try:
        c = f('alice@localhost')
        el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_ITEMS,
                     to='localhost')
        proxies = []
        for item in el.iter(q(NS_DISCO_ITEMS, 'item')):
            info = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_INFO,
                           to=item.get('jid'))
            ids = {(i.get('category'), i.get('type'))
                   for i in info.iter(q(NS_DISCO_INFO, 'identity'))}
            features = {x.get('var')
                        for x in info.iter(q(NS_DISCO_INFO, 'feature'))}
            if ('proxy', 'bytestreams') in ids and NS_BS in features:
                proxies.append(item.get('jid'))
        note('xep0065: proxies %s' % proxies)
        assert proxies == ['proxy.localhost'], tostr(el)
        el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_BS, to=proxies[0])
        hosts = [(h.get('jid'), h.get('host'), h.get('port'))
                 for h in el.iter(q(NS_BS, 'streamhost'))]
        note('xep0065: streamhosts %s' % hosts)
        assert hosts == [('proxy.localhost', 'localhost', '7777')]
        s = socket.create_connection(('127.0.0.1', 7777), timeout=10)
        try:
            s.sendall(b'\x05\x01\x00')
            assert s.recv(2) == b'\x05\x00'
        finally:
            s.close()
    finally:
        f.close_all()


def test_xep0363_and_cors(made):
    f = IMFactory(made)
    try:
        c = f('alice@localhost')
        el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_ITEMS,
                     to='localhost')
        services = []
        for item in el.iter(q(NS_DISCO_ITEMS, 'item')):
            info = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_INFO,
                           to=item.get('jid'))
            if NS_UPLOAD in {x.get('var') for x in
                             info.iter(q(NS_DISCO_INFO, 'feature'))}:
                services.append(item.get('jid'))
        note('xep0363: upload services %s' % services)
        assert services, tostr(el)
        el = c.iq_ok('get', "<request xmlns='%s' filename='hello.png' "
                     "size='1234' content-type='image/png'/>" % NS_UPLOAD,
                     to=services[0])
        s = el.find(q(NS_UPLOAD, 'slot'))
        put = s.find(q(NS_UPLOAD, 'put')).get('url')
        get = s.find(q(NS_UPLOAD, 'get')).get('url')
        assert put.startswith('https://localhost:5443/'), put
        # xep0363_cors: the preflight of a browser uploading from a page
        # on another origin
        st, h, _ = request(put, 'OPTIONS', {
            'Origin': 'https://compliance.conversations.im',
            'Access-Control-Request-Method': 'PUT',
            'Access-Control-Request-Headers': 'content-type'})
        for name in ('access-control-allow-origin',
                     'access-control-allow-methods',
                     'access-control-allow-headers'):
            assert name in h, (st, h)
        assert 'PUT' in h['access-control-allow-methods']
        assert 'content-type' in h['access-control-allow-headers'].lower()
        # and the upload itself, then the download, byte for byte
        data = os.urandom(1234)
        st, h, body = request(put, 'PUT', {'Content-Type': 'image/png'},
                              data)
        assert st == 201, body
        st, h, body = request(get)
        assert st == 200 and body == data
        assert h['content-type'] == 'image/png'
    finally:
        f.close_all()


def links_of(body, json_form):
    if json_form:
        doc = json.loads(body)
        return [(ln['rel'], ln['href']) for ln in doc.get('links', [])
                if ln.get('rel') in RELS]
    root = ET.fromstring(body)
    return [(ln.get('rel'), ln.get('href'))
            for ln in root.iter(q(NS_XRD, 'Link')) if ln.get('rel') in RELS]


def check_link(href):
    u = urllib.parse.urlsplit(href)
    if u.scheme in ('ws', 'wss'):
        st, _, _ = request(href, 'GET', {'Connection': 'Upgrade',
                                         'Upgrade': 'websocket'})
        return st <= 299
    st, h, _ = request(href, 'HEAD')
    return h.get('access-control-allow-origin') == '*'


@pytest.mark.parametrize('scheme,port', [('http', 5280), ('https', 5443)])
@pytest.mark.parametrize('json_form', [False, True])
def test_xep0156_host_meta(made, scheme, port, json_form):
    url = '%s://localhost:%d/.well-known/host-meta%s' % (
        scheme, port, '.json' if json_form else '')
    st, h, body = request(url)
    assert st == 200, body
    assert h.get('access-control-allow-origin') == '*', h
    links = links_of(body, json_form)
    note('xep0156: %s lists %s' % (url, links))
    assert links
    for rel, href in links:
        assert check_link(href), (rel, href)
