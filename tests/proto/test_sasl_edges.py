"""SASL at its edges (issue 13, item 7), each pinned to the exact answer:
five wrong passwords on one stream end it with <policy-violation/>; a
SCRAM client-final replayed on another stream is <not-authorized/>; an
unknown user gets the same salt and iteration count every time, and its
challenge comes as fast as a known user's; a payload over the SASL data
limit is <malformed-request/> and the stream goes on; and -PLUS over a
cleartext stream is a mechanism that was not offered."""

import base64
import statistics
import time

import pytest

from conftest import Server
from xmpp_raw import (NS_SASL, assert_sasl_failure, assert_sasl_success, q,
                      scram_parse, tostr)

PASSWORD = 'alice-secret'


def tls_client(server):
    c = server.client()
    c.open_stream()
    c.starttls()
    c.open_stream()
    return c


def test_five_wrong_passwords_end_the_stream(server):
    """RFC 6120 §6.4.5 leaves the number of retries to the server: five
    failures on one stream, then <policy-violation/> (the address's own
    throttle, auth-failures-per-ip, is far away here)."""
    c = tls_client(server)
    try:
        for i in range(5):
            assert_sasl_failure(c.sasl_plain('alice', 'wrong%d' % i),
                                'not-authorized')
        c.expect_stream_error('policy-violation')
    finally:
        c.close()
    server.assert_serves()


def sent_responses(c):
    """The SASL <response/> payloads c sent, decoded, in order."""
    out = []
    for d, b in c.log:
        if d == '>' and b.startswith(b'<response'):
            text = b.split(b'>', 1)[1].rsplit(b'<', 1)[0]
            out.append(base64.b64decode(text).decode())
    return out


def test_replayed_client_final_is_not_authorized(server):
    """A client-final seen on the wire (here: our own, after a success)
    is worthless on another stream: the server's nonce differs, so the
    proof is for another AuthMessage (RFC 5802 §9)."""
    cnonce = 'replaynonce0123456789abcd'
    c = tls_client(server)
    try:
        res = c.sasl_scram('alice', PASSWORD, 'SHA-256', cnonce=cnonce)
        assert_sasl_success(res.final)
        [final] = sent_responses(c)
    finally:
        c.close()
    c = tls_client(server)
    try:
        first = 'n,,n=alice,r=%s' % cnonce
        c.send("<auth xmlns='%s' mechanism='SCRAM-SHA-256'>%s</auth>"
               % (NS_SASL, base64.b64encode(first.encode()).decode()))
        c.expect(q(NS_SASL, 'challenge'))
        c.send("<response xmlns='%s'>%s</response>"
               % (NS_SASL, base64.b64encode(final.encode()).decode()))
        assert_sasl_failure(c.next_element(), 'not-authorized')
    finally:
        c.close()
    server.assert_serves()


def server_first(c, user):
    """Start SCRAM-SHA-256 for user; the server-first message's attributes
    and how long it took to come."""
    first = 'n,,n=%s,r=timingnonce%d' % (user, time.monotonic_ns())
    t0 = time.monotonic()
    c.send("<auth xmlns='%s' mechanism='SCRAM-SHA-256'>%s</auth>"
           % (NS_SASL, base64.b64encode(first.encode()).decode()))
    ch = c.expect(q(NS_SASL, 'challenge'))
    took = time.monotonic() - t0
    c.send("<abort xmlns='%s'/>" % NS_SASL)
    assert_sasl_failure(c.next_element(), 'aborted')
    return scram_parse(base64.b64decode(ch.text).decode()), took


def test_unknown_user_salt_and_timing(server):
    """No account enumeration through SCRAM: an unknown user's salt and
    iteration count are the same on every attempt (derived from the
    name, as a stored salt would be), and the challenge comes as fast as
    a known user's (both are one storage lookup)."""
    c = tls_client(server)
    try:
        known, unknown = [], []
        a1, _ = server_first(c, 'nosuchuser')
        a2, _ = server_first(c, 'nosuchuser')
        assert (a1['s'], a1['i']) == (a2['s'], a2['i'])
        k, _ = server_first(c, 'alice')
        assert a1['i'] == k['i']
        assert len(base64.b64decode(a1['s'])) == len(base64.b64decode(k['s']))
        for _ in range(30):
            known.append(server_first(c, 'alice')[1])
            unknown.append(server_first(c, 'nosuchuser')[1])
    finally:
        c.close()
    mk, mu = statistics.median(known), statistics.median(unknown)
    print('server-first: known %.2f ms, unknown %.2f ms (medians of 30)'
          % (mk * 1e3, mu * 1e3))
    assert abs(mk - mu) < max(0.002, 0.5 * mk), (mk, mu)


def test_oversized_payload_is_malformed_request(server):
    """SASL data is limited to 8 KiB of base64 (a SCRAM message is a few
    hundred bytes): 9 KiB is <malformed-request/>, not a complaint about
    its encoding, and the stream goes on."""
    c = tls_client(server)
    try:
        payload = base64.b64encode(b'\0alice\0' + b'x' * 6950).decode()
        assert len(payload) > 9 * 1024
        c.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>"
               % (NS_SASL, payload))
        assert_sasl_failure(c.next_element(), 'malformed-request')
        assert_sasl_success(c.sasl_plain('alice', PASSWORD))
    finally:
        c.close()


@pytest.fixture(scope='module')
def optional_server(certificate):
    srv = Server(certificate, starttls='optional').start()
    yield srv
    srv.stop()


def test_plus_over_cleartext_is_not_offered(optional_server):
    """Without TLS there is no channel to bind to: -PLUS is not offered
    (RFC 5802 §6), and asking for it anyway is <invalid-mechanism/>."""
    c = optional_server.client()
    try:
        features = c.open_stream()
        mechs = [m.text for m in features.iter('{%s}mechanism' % NS_SASL)]
        assert mechs and not any(m.endswith('-PLUS') for m in mechs), mechs
        first = 'p=tls-exporter,,n=alice,r=plusnonce0123456789'
        c.send("<auth xmlns='%s' mechanism='SCRAM-SHA-256-PLUS'>%s</auth>"
               % (NS_SASL, base64.b64encode(first.encode()).decode()))
        el = c.next_element()
        assert_sasl_failure(el, 'invalid-mechanism')
    finally:
        c.close()
    optional_server.assert_serves()
