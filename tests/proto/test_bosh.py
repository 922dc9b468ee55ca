"""BOSH (XEP-0124, XEP-0206; issue 17 part 3) against a real daemon with
http and https listeners, driven by raw HTTP requests (http.client):
session creation and its attributes, SCRAM over http:// and PLAIN over
https://, the restart after SASL, bind, messages both ways with a c2s
user (a held request answered when the message arrives), the rid window
(a repeated rid answered again, one far ahead ends the session), a bad
sid, terminate, inactivity, CORS preflight, GET refused, and host-meta
listing the BOSH URL (configured, or derived from the request)."""

import http.client
import json
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import Server, free_ports
import xmpp_raw
from xmpp_raw import NS_BIND, NS_CLIENT, NS_STREAM, q

NS_HTTPBIND = 'http://jabber.org/protocol/httpbind'
NS_XBOSH = 'urn:xmpp:xbosh'
XRD = '{http://docs.oasis-open.org/ns/xri/xrd-1.0}'
REL_BOSH = 'urn:xmpp:alt-connections:xbosh'
REL_WS = 'urn:xmpp:alt-connections:websocket'
BOSH_URL = 'https://xmpp.example/http-bind'
INACTIVITY = 2


class BoshServer(Server):
    def __init__(self, certificate, **kw):
        kw.setdefault('limits', {})
        kw['limits']['bosh-inactivity'] = INACTIVITY
        super().__init__(certificate, **kw)
        self.http_port = self.https_port = None

    bosh_url = None

    def config_text(self):
        text = super().config_text()
        if self.bosh_url:
            text = text.replace('host "localhost" {',
                                'host "localhost" {\n\tbosh-url "%s"'
                                % self.bosh_url, 1)
        return text + '\n'.join([
            'listen http %d address 127.0.0.1' % self.http_port,
            'listen https %d address 127.0.0.1' % self.https_port,
            'bosh on', 'websocket off', '']) + '\n'

    def start(self, create_users=True):
        self.http_port, self.https_port = free_ports(2)
        return super().start(create_users)


@pytest.fixture(scope='module')
def server(certificate):
    srv = BoshServer(certificate).start()
    yield srv
    srv.stop()


def post(server, body, tls=False, method='POST', headers=None, timeout=10):
    """One request on its own connection: (status, headers, body)."""
    if tls:
        ctx = xmpp_raw.client_tls_context()
        c = http.client.HTTPSConnection('127.0.0.1', server.https_port,
                                        context=ctx, timeout=timeout)
    else:
        c = http.client.HTTPConnection('127.0.0.1', server.http_port,
                                       timeout=timeout)
    h = {'Host': 'localhost', 'Content-Type': 'text/xml; charset=utf-8'}
    h.update(headers or {})
    c.request(method, '/http-bind', body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


class BoshClient:
    """A BOSH session: send() posts a body with the next rid, whose
    answer's children are queued; next_element() takes one, polling with
    an empty body while none is queued."""

    def __init__(self, server, tls=False, wait=2):
        self.server, self.tls = server, tls
        self.rid = 1000
        self.queue = []
        st, self.headers, data = post(server, (
            "<body xmlns='%s' rid='%d' to='localhost' xml:lang='en' "
            "wait='%d' hold='1' ver='1.6' xmpp:version='1.0' "
            "xmlns:xmpp='%s'/>" % (NS_HTTPBIND, self.rid, wait, NS_XBOSH)
        ).encode(), tls=tls)
        assert st == 200
        self.created = ET.fromstring(data)
        self.sid = self.created.get('sid')
        self.features = self.created.find(q(NS_STREAM, 'features'))

    def request(self, payload='', attrs='', rid=None):
        if rid is None:
            self.rid += 1
            rid = self.rid
        st, h, data = post(self.server, (
            "<body xmlns='%s' rid='%d' sid='%s' xmlns:xmpp='%s'%s>%s</body>"
            % (NS_HTTPBIND, rid, self.sid, NS_XBOSH, attrs, payload)
        ).encode(), tls=self.tls)
        assert st == 200
        return data

    def send(self, payload):
        body = ET.fromstring(self.request(payload))
        assert body.get('type') != 'terminate', ET.tostring(body)
        self.queue.extend(list(body))

    def next_element(self, timeout=None):
        deadline = time.time() + 10
        while not self.queue and time.time() < deadline:
            body = ET.fromstring(self.request())
            assert body.get('type') != 'terminate', ET.tostring(body)
            self.queue.extend(list(body))
        assert self.queue, 'nothing from the server'
        return self.queue.pop(0)

    def restart(self):
        body = ET.fromstring(self.request(
            attrs=" xmpp:restart='true' to='localhost'"))
        self.queue.extend(list(body))
        return self.next_element()

    def expect(self, tag, timeout=None):
        el = self.next_element(timeout)
        assert el.tag == tag, 'expected %s, got %s' % (
            tag, xmpp_raw.tostr(el))
        return el

    sasl_scram = xmpp_raw.RawClient.sasl_scram
    sasl_plain = xmpp_raw.RawClient.sasl_plain
    bind = xmpp_raw.RawClient.bind


def login(server, tls=False, resource='bosh'):
    c = BoshClient(server, tls=tls)
    if tls:
        xmpp_raw.assert_sasl_success(c.sasl_plain('alice', 'alice-secret'))
    else:
        res = c.sasl_scram('alice', 'alice-secret')
        xmpp_raw.assert_sasl_success(res.final)
        assert res.server_signature_ok
    f = c.restart()
    assert f.tag == q(NS_STREAM, 'features')
    assert f.find(q(NS_BIND, 'bind')) is not None
    assert c.bind(resource) == 'alice@localhost/' + resource
    return c


def test_session_creation_attributes(server):
    c = BoshClient(server)
    b = c.created
    assert len(c.sid) == 32 and int(c.sid, 16) >= 0
    assert b.get('wait') == '2' and b.get('hold') == '1'
    assert b.get('requests') == '2' and b.get('ver') == '1.11'
    assert b.get('from') == 'localhost' and b.get('authid')
    for a in ('polling', 'inactivity', 'maxpause'):
        assert int(b.get(a)) > 0
    assert b.get('{%s}version' % NS_XBOSH) == '1.0'
    assert c.headers['content-type'].startswith('text/xml')
    assert c.headers['access-control-allow-origin'] == '*'
    f = b.find(q(NS_STREAM, 'features'))
    mechs = xmpp_raw.mechanisms(f)
    assert 'SCRAM-SHA-256' in mechs and 'PLAIN' not in mechs
    assert f.find(q(xmpp_raw.NS_TLS, 'starttls')) is None
    # Two sessions never share a sid.
    assert BoshClient(server).sid != c.sid


def test_wait_is_capped(server):
    c = BoshClient(server, wait=3600)
    assert c.created.get('wait') == '60'


def test_scram_over_http_restart_bind_and_terminate(server):
    c = login(server)
    body = ET.fromstring(c.request(attrs=" type='terminate'"))
    assert body.get('type') == 'terminate'
    body = ET.fromstring(c.request())
    assert body.get('type') == 'terminate'
    assert body.get('condition') == 'item-not-found'


def test_plain_over_https_and_messages_both_ways(server):
    c = login(server, tls=True, resource='web')
    c.send("<presence xmlns='jabber:client'/>")
    bob = server.login('bob@localhost', resource='tcp')
    bob.presence()
    try:
        # A long poll held while nothing is there ...
        got = {}

        def poll():
            got['data'] = c.request()
        t = threading.Thread(target=poll)
        t.start()
        time.sleep(0.3)
        assert t.is_alive()
        # ... answered when bob's message arrives.
        bob.message('alice@localhost/web', 'over tcp', mid='t1')
        t.join(5)
        assert not t.is_alive()
        body = ET.fromstring(got['data'])
        msgs = body.findall(q(NS_CLIENT, 'message'))
        assert msgs and msgs[0].findtext(q(NS_CLIENT, 'body')) == 'over tcp'
        assert msgs[0].get('from') == 'bob@localhost/tcp'
        # And from BOSH to the c2s user.
        c.request("<message xmlns='jabber:client' to='bob@localhost/tcp' "
                  "type='chat' id='b1'><body>over bosh</body></message>")
        m = bob.expect_stanza('message')
        assert m.get('from') == 'alice@localhost/web'
        assert m.findtext(q(NS_CLIENT, 'body')) == 'over bosh'
        # xmppctl tells the two transports apart
        rows = {r['jid']: r for r in json.loads(
            server.ctl('sessions', '--json').stdout)}
        assert rows['alice@localhost/web']['transport'] == 'bosh'
        assert rows['bob@localhost/tcp']['transport'] == 'c2s'
    finally:
        bob.close()


def test_output_while_no_request_is_held_goes_with_the_next(server):
    """A stanza for the BOSH session that comes while the client has no
    request at the server waits for the next request, which is answered
    with it at once (not after 'wait')."""
    c = login(server, tls=True, resource='gap')
    c.send("<presence xmlns='jabber:client'/>")
    bob = server.login('bob@localhost', resource='tcp')
    try:
        # no request of the BOSH client is at the server now
        bob.message('alice@localhost/gap', 'in the gap', mid='g1')
        time.sleep(0.5)
        start = time.time()
        data = c.request()
        took = time.time() - start
        body = ET.fromstring(data)
        msgs = body.findall(q(NS_CLIENT, 'message'))
        assert msgs and msgs[0].findtext(q(NS_CLIENT, 'body')) == \
            'in the gap', data
        assert took < 1.0, took
    finally:
        bob.close()


def test_empty_poll_answered_after_wait(server):
    c = BoshClient(server, wait=1)
    t0 = time.time()
    body = ET.fromstring(c.request())
    assert 0.8 < time.time() - t0 < 5
    assert len(body) == 0 and body.get('type') is None


def test_repeated_rid_gets_the_same_response(server):
    c = BoshClient(server)
    res = c.sasl_scram('alice', 'alice-secret')
    xmpp_raw.assert_sasl_success(res.final)
    first = c.request(attrs=" xmpp:restart='true'")
    again = c.request(attrs=" xmpp:restart='true'", rid=c.rid)
    assert first == again
    assert ET.fromstring(first).find(q(NS_STREAM, 'features')) is not None


def test_out_of_order_request_is_buffered(server):
    c = login(server, resource='order')
    got = {}

    def later():
        got['data'] = c.request(
            "<iq xmlns='jabber:client' type='get' id='second'>"
            "<ping xmlns='urn:xmpp:ping'/></iq>", rid=c.rid + 2)
    t = threading.Thread(target=later)
    t.start()
    time.sleep(0.3)
    # rid+2 waits for rid+1; then both are processed in rid order.
    first = c.request("<iq xmlns='jabber:client' type='get' id='first'>"
                      "<ping xmlns='urn:xmpp:ping'/></iq>", rid=c.rid + 1)
    t.join(5)
    c.rid += 2
    assert not t.is_alive()
    ids = [el.get('id') for data in (got['data'], first)
           for el in ET.fromstring(data).iter(q(NS_CLIENT, 'iq'))]
    if len(ids) < 2:
        ids += [el.get('id') for el in ET.fromstring(c.request()).iter(
            q(NS_CLIENT, 'iq'))]
    assert ids == ['first', 'second']


def test_early_request_sent_twice_is_processed_once(server):
    """A client retransmitting an early request (its connection dropped)
    must not get it processed twice, nor leave a slot behind that makes
    a later early request wait forever."""
    c = login(server, resource='twice')
    ping = ("<iq xmlns='jabber:client' type='get' id='%s'>"
            "<ping xmlns='urn:xmpp:ping'/></iq>")
    ids = []

    def early(rid, iq_id):
        data = c.request(ping % iq_id, rid=rid)
        ids.extend(el.get('id') for el in ET.fromstring(data).iter(
            q(NS_CLIENT, 'iq')))

    for rnd in range(2):
        base = c.rid
        ts = [threading.Thread(target=early, args=(base + 2, 'e%d' % rnd))
              for _ in range(2)]
        for t in ts:
            t.start()
            time.sleep(0.3)
        early(base + 1, 'n%d' % rnd)
        for t in ts:
            t.join(10)
            assert not t.is_alive()
        c.rid = base + 2
        end = time.time() + 5
        while ids.count('e%d' % rnd) < 1 and time.time() < end:
            c.rid += 1
            early(c.rid, 'poll%d' % c.rid)
    answered = [i for i in ids if not i.startswith('poll')]
    assert sorted(answered) == ['e0', 'e1', 'n0', 'n1'], ids


def test_bad_sid_and_rid_far_ahead(server):
    st, h, data = post(server, (
        "<body xmlns='%s' rid='5' sid='nosuchsession'/>" % NS_HTTPBIND
    ).encode())
    b = ET.fromstring(data)
    assert b.get('type') == 'terminate'
    assert b.get('condition') == 'item-not-found'
    c = BoshClient(server)
    b = ET.fromstring(c.request(rid=c.rid + 100))
    assert b.get('type') == 'terminate'
    assert b.get('condition') == 'item-not-found'
    b = ET.fromstring(c.request())
    assert b.get('condition') == 'item-not-found'


def test_cors_preflight_and_get_page(server):
    st, h, _ = post(server, b'', method='OPTIONS',
                    headers={'Origin': 'https://web.example',
                             'Access-Control-Request-Method': 'POST'})
    assert st in (200, 204)
    assert h['access-control-allow-origin'] == '*'
    assert 'POST' in h['access-control-allow-methods']
    assert 'content-type' in h['access-control-allow-headers'].lower()
    # GET and HEAD: a page saying what the URL is for, with CORS (the
    # Conversations compliance tester sends HEAD to the host-meta BOSH
    # link and wants Access-Control-Allow-Origin: *); other methods 405.
    st, h, body = post(server, None, method='GET')
    assert st == 200 and b'BOSH' in body
    assert h['access-control-allow-origin'] == '*'
    assert h['content-type'].startswith('text/html')
    st, h, body = post(server, None, method='HEAD')
    assert st == 200 and body == b''
    assert h['access-control-allow-origin'] == '*'
    st, h, _ = post(server, b'x', method='PUT')
    assert st == 405


def test_malformed_body_is_bad_request(server):
    for body in (b'<body xmlns="x"', b"<body xmlns='%s'/>" % (
            NS_HTTPBIND.encode())):
        st, h, data = post(server, body)
        assert st == 200
        b = ET.fromstring(data)
        assert b.get('type') == 'terminate'
        assert b.get('condition') == 'bad-request'


def test_unknown_host(server):
    st, h, data = post(server, (
        "<body xmlns='%s' rid='1' to='elsewhere.example' wait='5' "
        "hold='1'/>" % NS_HTTPBIND).encode())
    assert ET.fromstring(data).get('condition') == 'host-unknown'


def test_inactive_session_ends(server):
    c = login(server, resource='idle')
    assert c.created.get('inactivity') == str(INACTIVITY)
    listed = server.ctl('sessions')
    assert 'alice@localhost/idle' in listed.stdout
    time.sleep(INACTIVITY + 1.5)
    b = ET.fromstring(c.request())
    assert b.get('type') == 'terminate'
    assert b.get('condition') == 'item-not-found'
    assert 'alice@localhost/idle' not in server.ctl('sessions').stdout


def test_pause_answers_held_and_extends_inactivity(server):
    c = login(server, resource='paused')
    maxpause = int(c.created.get('maxpause'))
    got = {}

    def poll():
        got['data'] = c.request()
    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.3)
    assert t.is_alive()
    c.request(attrs=" pause='%d'" % (INACTIVITY + 3))
    t.join(2)
    assert not t.is_alive()
    # Past bosh-inactivity, within the pause: the session is there.
    time.sleep(INACTIVITY + 1)
    b = ET.fromstring(c.request("<iq xmlns='jabber:client' type='get' "
                                "id='p1'><ping xmlns='urn:xmpp:ping'/>"
                                "</iq>"))
    assert b.get('type') is None
    assert b.find(q(NS_CLIENT, 'iq')).get('id') == 'p1'
    # A pause over maxpause ends the session.
    b = ET.fromstring(c.request(attrs=" pause='%d'" % (maxpause + 1)))
    assert b.get('type') == 'terminate'
    assert b.get('condition') == 'policy-violation'


def http_get(port, path):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
    c.request('GET', path, headers={'Host': 'localhost'})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def test_host_meta_lists_the_bosh_url_from_the_request(server):
    st, data = http_get(server.http_port, '/.well-known/host-meta')
    assert st == 200
    links = [(l.get('rel'), l.get('href'))
             for l in ET.fromstring(data).iter(XRD + 'Link')]
    # websocket off: only BOSH, at the scheme and Host of the request.
    assert links == [(REL_BOSH, 'http://localhost/http-bind')]


def test_host_meta_lists_the_configured_bosh_url(certificate):
    srv = BoshServer(certificate)
    srv.bosh_url = BOSH_URL
    srv.start()
    try:
        st, data = http_get(srv.http_port, '/.well-known/host-meta.json')
        assert st == 200
        assert json.loads(data)['links'] == [
            {'rel': REL_BOSH, 'href': BOSH_URL}]
    finally:
        srv.stop()
