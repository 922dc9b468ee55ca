"""A host that has moved sends its clients elsewhere: "see-other-host"
for c2s streams (RFC 6120 §4.9.3.19, once TLS is up where it is
required), "see-other-uri" for WebSocket (<close see-other-uri/>, RFC 7395
§3.6.1) and for BOSH (terminate condition='see-other-uri' with <uri/>,
XEP-0124 §17.3).  A host without them is not redirected (the other tests);
the configuration is checked (test_conf)."""

import xml.etree.ElementTree as ET

import pytest

from test_bosh import NS_HTTPBIND, post
from test_websocket import NS_FRAMING, NS_STREAM_ERR, WsClient, WsServer
from xmpp_raw import NS_STREAM, NS_TLS, q

NEW_HOST = 'new.example:5223'
NEW_WS = 'wss://new.example/xmpp-websocket'
NEW_BOSH = 'https://new.example/http-bind'


class MovedServer(WsServer):
    def __init__(self, certificate):
        super().__init__(certificate, host_extra='\n'.join([
            '\tsee-other-host "%s"' % NEW_HOST,
            '\tsee-other-uri "%s"' % NEW_WS,
            '\tsee-other-uri "%s"' % NEW_BOSH]))

    def config_text(self):
        return super().config_text() + 'bosh on\n'


@pytest.fixture(scope='module')
def moved(certificate):
    srv = MovedServer(certificate).start(create_users=False)
    yield srv
    srv.stop()


def see_other_host(c):
    el = c.expect_stream_error('see-other-host')
    assert el.find(q(NS_STREAM_ERR, 'see-other-host')).text == NEW_HOST


def test_c2s_after_starttls(moved):
    c = moved.client()
    try:
        # not before TLS: the features offer STARTTLS (required) ...
        f = c.open_stream()
        assert f.find(q(NS_TLS, 'starttls')) is not None
        # ... and the stream header after it is answered with the move
        c.starttls()
        c._reset_parser()
        c.send(c.stream_header())
        c.read_header()
        see_other_host(c)
    finally:
        c.close()


def test_c2s_direct_tls(moved):
    c = moved.client(tls=True)
    try:
        c.send(c.stream_header())
        c.read_header()
        see_other_host(c)
    finally:
        c.close()


def test_websocket_close_with_see_other_uri(moved):
    for tls, port in ((False, moved.http_port), (True, moved.https_port)):
        c = WsClient(port, tls=tls)
        try:
            assert c.handshake() == 101
            c.send("<open xmlns='%s' to='localhost' version='1.0'/>"
                   % NS_FRAMING)
            c.expect(q(NS_FRAMING, 'open'))
            el = c.expect(q(NS_FRAMING, 'close'))
            assert el.get('see-other-uri') == NEW_WS
            c.expect_close(1000)
        finally:
            c.close()


def test_bosh_terminate_see_other_uri(moved):
    st, _, data = post(moved, (
        "<body xmlns='%s' rid='1' to='localhost' wait='5' hold='1' "
        "ver='1.6' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'/>"
        % NS_HTTPBIND).encode())
    assert st == 200
    body = ET.fromstring(data)
    assert body.get('type') == 'terminate'
    assert body.get('condition') == 'see-other-uri'
    assert body.findtext(q(NS_HTTPBIND, 'uri')) == NEW_BOSH
    assert body.get('sid') is None


def test_no_stream_error_element_inside_besides_the_move(moved):
    """The condition element carries the place as its text and nothing
    else is in the error (RFC 6120 §4.9.3.19)."""
    c = moved.client(tls=True)
    try:
        c.send(c.stream_header())
        c.read_header()
        el = c.next_element()
        assert el.tag == q(NS_STREAM, 'error')
        assert [x.tag for x in el] == [q(NS_STREAM_ERR, 'see-other-host')]
    finally:
        c.close()


def test_other_hosts_unaffected(moved):
    """An unknown domain is still host-unknown, not a move."""
    c = moved.client(tls=True)
    try:
        c.send(c.stream_header(to='other.example'))
        c.read_header()
        c.expect_stream_error('host-unknown')
    finally:
        c.close()
