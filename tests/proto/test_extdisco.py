"""XEP-0215 external service discovery (issue 18 item 5) with raw XML:
the STUN and TURN servers of the configuration, all or by type, TURN
credentials of the TURN REST API (username EXPIRY:JID, password
base64(HMAC-SHA1(secret, username))) in <services/> results and for
<credentials/>, the errors (bad-request, item-not-found), the feature
in the server's disco#info only while services are configured; and
credentials checked by a real coturn ("use-auth-secret") with a TURN
Allocate, which also refuses a wrong or expired password."""

import base64
import calendar
import hashlib
import hmac
import os
import shutil
import subprocess
import time

import pytest

import turn_client
import xmpp_raw
from conftest import free_ports
from xmpp_raw import NS_CLIENT, assert_stanza_error, q, tostr

NS = 'urn:xmpp:extdisco:2'
NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info'
SECRET = 'turn-secret-0123456789'
SECRET2 = 'another-secret-abcdefgh'

# The TURN server on 127.0.0.1 is coturn in test_coturn (port chosen at
# start-up, the configuration written then: TURN_PORT).
SERVER_OPTIONS = {'extra': '\n'.join([
    'stun stun.example.org',
    'stun 2001:db8::1 port 3479 transport tcp',
    'turn 127.0.0.1 port TURN_PORT secret "%s" ttl 1h' % SECRET,
    'turn turn.example.org port 5349 transport tcp secret %s' % SECRET2,
])}


@pytest.fixture(scope='module')
def turn_port():
    return free_ports(1)[0]


@pytest.fixture(scope='module')
def server(certificate, turn_port):
    from conftest import Server
    opts = dict(SERVER_OPTIONS)
    opts['extra'] = opts['extra'].replace('TURN_PORT', str(turn_port))
    srv = Server(certificate, **opts).start()
    yield srv
    srv.stop()
    shutil.rmtree(srv.dir, ignore_errors=True)


@pytest.fixture
def alice(server):
    c = server.login('alice@localhost')
    yield c
    c.close()


def iq(c, payload, itype='get', iq_id='x1', to='localhost'):
    c.send("<iq type='%s' id='%s' to='%s'>%s</iq>" % (itype, iq_id, to,
                                                      payload))
    el = c.expect_stanza('iq')
    assert el.get('id') == iq_id, tostr(el)
    return el


def services_of(el, name='services'):
    assert el.get('type') == 'result', tostr(el)
    top = el.find(q(NS, name))
    assert top is not None, tostr(el)
    return [dict(s.attrib) for s in top.findall(q(NS, 'service'))]


def expected_password(secret, username):
    return base64.b64encode(hmac.new(secret.encode(), username.encode(),
                                     hashlib.sha1).digest()).decode()


def check_turn_credentials(svc, secret, ttl, jid='alice@localhost'):
    assert svc['restricted'] == '1'
    expiry, user = svc['username'].split(':', 1)
    assert user == jid
    now = time.time()
    assert now + ttl - 30 <= int(expiry) <= now + ttl + 1, svc
    assert svc['password'] == expected_password(secret, svc['username'])
    assert calendar.timegm(time.strptime(
        svc['expires'], '%Y-%m-%dT%H:%M:%SZ')) == int(expiry)


def test_all_services(alice, turn_port):
    svcs = services_of(iq(alice, "<services xmlns='%s'/>" % NS))
    plain = [{k: v for k, v in s.items()
              if k in ('host', 'port', 'transport', 'type')} for s in svcs]
    assert plain == [
        {'host': 'stun.example.org', 'port': '3478', 'transport': 'udp',
         'type': 'stun'},
        {'host': '2001:db8::1', 'port': '3479', 'transport': 'tcp',
         'type': 'stun'},
        {'host': '127.0.0.1', 'port': str(turn_port), 'transport': 'udp',
         'type': 'turn'},
        {'host': 'turn.example.org', 'port': '5349', 'transport': 'tcp',
         'type': 'turn'},
    ]
    # STUN needs no credentials: none given.
    for s in svcs[:2]:
        assert set(s) == {'host', 'port', 'transport', 'type'}, s
    check_turn_credentials(svcs[2], SECRET, 3600)
    check_turn_credentials(svcs[3], SECRET2, 86400)


def test_services_by_type(alice):
    el = iq(alice, "<services xmlns='%s' type='turn'/>" % NS)
    assert el.find(q(NS, 'services')).get('type') == 'turn'
    assert [s['host'] for s in services_of(el)] == [
        '127.0.0.1', 'turn.example.org']
    svcs = services_of(iq(alice, "<services xmlns='%s' type='stun'/>" % NS))
    assert [s['host'] for s in svcs] == ['stun.example.org', '2001:db8::1']
    assert services_of(iq(alice, "<services xmlns='%s' type='ftp'/>"
                          % NS)) == []


def test_credentials(alice, server):
    el = iq(alice, "<credentials xmlns='%s'><service host='turn.example.org'"
                   " type='turn'/></credentials>" % NS)
    svcs = services_of(el, 'credentials')
    assert len(svcs) == 1 and svcs[0]['host'] == 'turn.example.org'
    assert svcs[0]['port'] == '5349' and svcs[0]['transport'] == 'tcp'
    check_turn_credentials(svcs[0], SECRET2, 86400)
    # Each user gets their own.
    bob = server.login('bob@localhost')
    try:
        svcs = services_of(iq(bob, "<credentials xmlns='%s'><service "
                                   "host='TURN.example.org' port='5349'/>"
                                   "</credentials>" % NS), 'credentials')
        check_turn_credentials(svcs[0], SECRET2, 86400, 'bob@localhost')
    finally:
        bob.close()


@pytest.mark.parametrize('payload,condition', [
    ("<credentials xmlns='%s'><service host='nowhere.example' type='turn'/>"
     "</credentials>" % NS, 'item-not-found'),
    ("<credentials xmlns='%s'><service host='turn.example.org' port='1'/>"
     "</credentials>" % NS, 'item-not-found'),
    ("<credentials xmlns='%s'><service host='turn.example.org' type='stun'/>"
     "</credentials>" % NS, 'item-not-found'),
    ("<credentials xmlns='%s'/>" % NS, 'bad-request'),
    ("<credentials xmlns='%s'><service type='turn'/></credentials>" % NS,
     'bad-request'),
])
def test_credentials_errors(alice, payload, condition):
    assert_stanza_error(iq(alice, payload), 'iq', condition)


def test_set_is_bad_request(alice):
    assert_stanza_error(iq(alice, "<services xmlns='%s'/>" % NS, 'set'),
                        'iq', 'bad-request', 'modify')


def test_to_a_bare_jid_is_not_answered_for_the_server(alice):
    el = iq(alice, "<services xmlns='%s'/>" % NS, to='alice@localhost')
    assert_stanza_error(el, 'iq', 'service-unavailable')


def disco_features(c):
    el = iq(c, "<query xmlns='%s'/>" % NS_DISCO_INFO, iq_id='d1')
    return {f.get('var') for f in el.find(q(NS_DISCO_INFO, 'query'))
            if f.get('var')}


def test_advertised(alice):
    assert NS in disco_features(alice)


def test_not_advertised_without_services(server_factory):
    srv = server_factory()
    c = srv.login('alice@localhost')
    try:
        assert NS not in disco_features(c)
        assert_stanza_error(iq(c, "<services xmlns='%s'/>" % NS), 'iq',
                            'service-unavailable')
    finally:
        c.close()


# -- against coturn --

@pytest.fixture(scope='module')
def coturn(turn_port, tmp_path_factory):
    binary = shutil.which('turnserver')
    if binary is None:
        subprocess.run(['sh', os.path.join(os.path.dirname(__file__), '..',
                                           'deps.sh'), 'coturn'],
                       capture_output=True, timeout=300)
        binary = shutil.which('turnserver')
    if binary is None:
        pytest.skip('coturn is not installed and could not be installed '
                    '(apt-get install coturn, as root)')
    d = tmp_path_factory.mktemp('coturn')
    log = open(d / 'turnserver.log', 'wb')
    relay_low = 49152 + (turn_port % 8000)
    proc = subprocess.Popen([
        binary, '-n', '--listening-ip=127.0.0.1',
        '--listening-port=%d' % turn_port, '--relay-ip=127.0.0.1',
        '--min-port=%d' % relay_low, '--max-port=%d' % (relay_low + 50),
        '--use-auth-secret', '--static-auth-secret=%s' % SECRET,
        '--realm=localhost', '--no-tls', '--no-dtls', '--no-cli',
        '--db=%s' % (d / 'turndb'), '--pidfile=%s' % (d / 'pid'),
        '--log-file=stdout', '--simple-log'],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:         # ready when it answers an Allocate with 401
            assert proc.poll() is None, (d / 'turnserver.log').read_text()
            try:
                turn_client.allocate('127.0.0.1', turn_port, 'x', 'y',
                                     timeout=0.3)
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        yield d
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_coturn_accepts_the_credentials(alice, coturn, turn_port):
    svcs = services_of(iq(alice, "<services xmlns='%s' type='turn'/>" % NS))
    svc = svcs[0]
    assert svc['host'] == '127.0.0.1' and svc['port'] == str(turn_port)
    ok, relayed = turn_client.allocate('127.0.0.1', turn_port,
                                       svc['username'], svc['password'])
    assert ok, 'coturn refused: %s\n%s' % (
        relayed, (coturn / 'turnserver.log').read_text()[-3000:])
    assert relayed.startswith('127.0.0.1:')
    # The same through <credentials/>.
    el = iq(alice, "<credentials xmlns='%s'><service host='127.0.0.1' "
                   "type='turn'/></credentials>" % NS)
    svc = services_of(el, 'credentials')[0]
    assert turn_client.allocate('127.0.0.1', turn_port, svc['username'],
                                svc['password'])[0]


def test_coturn_refuses_forged_and_expired(alice, coturn, turn_port):
    svc = services_of(iq(alice, "<services xmlns='%s' type='turn'/>"
                         % NS))[0]
    # Another user's name with alice's password.
    expiry = svc['username'].split(':')[0]
    assert turn_client.allocate('127.0.0.1', turn_port,
                                expiry + ':bob@localhost',
                                svc['password']) == (False, 401)
    # A later expiry with the same password.
    assert turn_client.allocate(
        '127.0.0.1', turn_port, '%d:alice@localhost' % (int(expiry) + 10),
        svc['password']) == (False, 401)
    # Correctly signed but expired: the TTL is what bounds them.
    old = '%d:alice@localhost' % (time.time() - 10)
    assert turn_client.allocate('127.0.0.1', turn_port, old,
                                expected_password(SECRET, old)) == (
        False, 401)
