"""Modules switched on and off by a reload (xmppctl reload or SIGHUP),
without dropping sessions: in-band registration (XEP-0077) turned on is
advertised and works on a new stream, turned off it is gone; the archive
(XEP-0313) off and on; every module that can be switched off ("module
NAME off") off and on again, its disco features and IQ handlers with it,
the block list of a session already online loaded again; and what a
configuration may not say ("module" with an unknown name or a core one)."""

import os
import signal
import subprocess
import time

import pytest

from conftest import XMPPD_BIN
from im_helpers import (NS_BLOCKING, NS_CAPS, NS_DISCO_INFO, NS_LAST, NS_PING,
                        NS_PRIVATE, NS_REGISTER, NS_REGISTER_FEATURE,
                        NS_TIME, NS_VCARD, NS_VERSION, IMFactory, caps_ver,
                        is_message)
from xmpp_raw import NS_CLIENT, assert_sasl_success, q, tostr

NS_MAM = 'urn:xmpp:mam:2'
NS_CARBONS = 'urn:xmpp:carbons:2'

# What each module that can be switched off advertises on the server
# (DISCO_SERVER) or on an account (DISCO_ACCOUNT), and an IQ it answers:
# (module, scope, feature, IQ type, payload, IQ 'to': None = own account).
SWITCHABLE = [
    ('vcard', 'server', NS_VCARD, 'get', "<vCard xmlns='vcard-temp'/>",
     None),
    ('private', 'server', NS_PRIVATE, 'get',
     "<query xmlns='jabber:iq:private'><x xmlns='urn:example:m'/></query>",
     None),
    ('offline', 'server', 'msgoffline', None, None, None),
    ('ping', 'server', NS_PING, 'get', "<ping xmlns='urn:xmpp:ping'/>",
     'localhost'),
    ('version', 'server', NS_VERSION, 'get',
     "<query xmlns='jabber:iq:version'/>", 'localhost'),
    ('time', 'server', NS_TIME, 'get', "<time xmlns='urn:xmpp:time'/>",
     'localhost'),
    ('last', 'server', NS_LAST, 'get', "<query xmlns='jabber:iq:last'/>",
     'localhost'),
    ('blocking', 'server', NS_BLOCKING, 'get',
     "<blocklist xmlns='urn:xmpp:blocking'/>", None),
    ('mam', 'account', NS_MAM, 'get',
     "<prefs xmlns='urn:xmpp:mam:2'/>", None),
    ('carbons', 'server', NS_CARBONS, 'set',
     "<enable xmlns='urn:xmpp:carbons:2'/>", None),
    ('push', 'account', 'urn:xmpp:push:0', 'set',
     "<enable xmlns='urn:xmpp:push:0' jid='push.example' node='n'/>", None),
]


def reload(srv, extra, how='ctl'):
    """Rewrite the configuration's extra statements and reload; returns
    once the daemon says it reloaded (one more time than before)."""
    before = srv.stderr_text().count('configuration and certificates '
                                     'reloaded')
    srv.extra = extra
    srv.conf.write_text(srv.config_text())
    if how == 'ctl':
        r = srv.ctl('reload')
        assert r.returncode == 0, r.stderr
    else:
        srv.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while srv.stderr_text().count('configuration and certificates '
                                  'reloaded') == before:
        assert time.monotonic() < deadline, srv.stderr_tail()
        time.sleep(0.02)


def preauth(srv):
    """A client after STARTTLS and the stream restart; (client, features)."""
    c = srv.client()
    c.open_stream()
    c.starttls()
    return c, c.open_stream()


def features_of(client, to='localhost'):
    el = client.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=to)
    query = el.find(q(NS_DISCO_INFO, 'query'))
    return {f.get('var') for f in query.findall(q(NS_DISCO_INFO, 'feature'))}


def register(c, name, password, iq_id='reg'):
    c.send("<iq type='set' id='%s'><query xmlns='%s'><username>%s</username>"
           "<password>%s</password></query></iq>"
           % (iq_id, NS_REGISTER, name, password))
    el = c.expect(q(NS_CLIENT, 'iq'))
    assert el.get('id') == iq_id, tostr(el)
    return el


def assert_alive(client):
    """The session is still bound and answered: a message to itself comes
    back."""
    body = 'alive-%s' % os.urandom(3).hex()
    client.message(client.full, body)
    client.wait(is_message(body=body))


def test_registration_switched_on_and_off_by_reload(server_factory):
    srv = server_factory()
    im = IMFactory(srv)
    try:
        alice = im('alice@localhost')
        c, features = preauth(srv)
        assert features.find(q(NS_REGISTER_FEATURE, 'register')) is None
        c.close()
        assert NS_REGISTER not in features_of(alice)

        reload(srv, 'registration on')
        assert 'module register switched on' in srv.stderr_text()
        c, features = preauth(srv)
        try:
            assert features.find(q(NS_REGISTER_FEATURE, 'register')) \
                is not None, tostr(features)
            name = 'new%s' % os.urandom(3).hex()
            el = register(c, name, 'new-secret')
            assert el.get('type') == 'result', tostr(el)
            assert_sasl_success(c.sasl_plain(name, 'new-secret'))
        finally:
            c.close()
        disco = features_of(alice)
        assert NS_REGISTER in disco
        assert_alive(alice)

        reload(srv, 'registration off', how='sighup')
        assert 'module register switched off' in srv.stderr_text()
        c, features = preauth(srv)
        try:
            assert features.find(q(NS_REGISTER_FEATURE, 'register')) is None
            # XEP-0077 §3.1: refused as by a server without registration,
            # and the stream goes on.
            el = register(c, 'other%s' % os.urandom(3).hex(), 'pw')
            assert el.get('type') == 'error', tostr(el)
            assert el.find('{%s}error/{urn:ietf:params:xml:ns:xmpp-stanzas}'
                           'service-unavailable' % NS_CLIENT) is not None, \
                tostr(el)
            assert_sasl_success(c.sasl_plain('alice', 'alice-secret'))
        finally:
            c.close()
        assert NS_REGISTER not in features_of(alice)
        # registering after authentication is gone too
        alice.iq_error('get', "<query xmlns='%s'/>" % NS_REGISTER,
                       'service-unavailable', 'cancel', to='localhost')
        assert_alive(alice)
    finally:
        im.close_all()


def test_archive_switched_off_and_on(server_factory):
    srv = server_factory()
    im = IMFactory(srv)
    try:
        alice, bob = im('alice@localhost'), im('bob@localhost')
        assert NS_MAM in features_of(alice, to=None)
        bob.message('alice@localhost', 'archived-1')
        alice.wait(is_message(body='archived-1'))

        reload(srv, 'archive off')
        assert NS_MAM not in features_of(alice, to=None)
        assert NS_MAM not in features_of(alice)
        alice.iq_error('set', "<query xmlns='%s'/>" % NS_MAM,
                       'service-unavailable', 'cancel')
        bob.message('alice@localhost', 'not-archived')
        el = alice.wait(is_message(body='not-archived'))
        assert el.find('{urn:xmpp:sid:0}stanza-id') is None, tostr(el)

        reload(srv, '')
        assert NS_MAM in features_of(alice, to=None)
        alice.send("<iq type='set' id='mq'><query xmlns='%s' queryid='q1'/>"
                   "</iq>" % NS_MAM)
        bodies = []
        while True:
            el = alice.wait(lambda e: e.tag == q(NS_CLIENT, 'message') or
                            (e.tag == q(NS_CLIENT, 'iq') and
                             e.get('id') == 'mq'))
            if el.tag == q(NS_CLIENT, 'iq'):
                assert el.get('type') == 'result', tostr(el)
                break
            bodies.append(el.findtext('.//{jabber:client}body'))
        assert bodies == ['archived-1'], bodies
        assert_alive(alice)
        assert_alive(bob)
    finally:
        im.close_all()


def check_modules(alice, on, skip=()):
    """Each switchable module (but those in skip) advertises its feature
    and answers its IQ when on; when off, neither."""
    server = features_of(alice)
    account = features_of(alice, to=None)
    for name, scope, feature, itype, payload, to in SWITCHABLE:
        if name in skip:
            continue
        where = server if scope == 'server' else account
        assert (feature in where) == on, (name, on, sorted(where))
        if itype is None:
            continue
        el = alice.iq(itype, payload, to=to)
        unavailable = el.get('type') == 'error' and el.find(
            '{%s}error/{urn:ietf:params:xml:ns:xmpp-stanzas}'
            'service-unavailable' % NS_CLIENT) is not None
        if on:
            # answered by the module (no vCard stored yet is
            # item-not-found, XEP-0054 §3.1)
            assert el.get('type') == 'result' or (
                name == 'vcard' and el.find(
                    '{%s}error/{urn:ietf:params:xml:ns:xmpp-stanzas}'
                    'item-not-found' % NS_CLIENT) is not None), \
                (name, tostr(el))
        else:
            assert unavailable, (name, tostr(el))


def test_every_module_off_and_on_with_sessions_online(server_factory):
    srv = server_factory()
    im = IMFactory(srv)
    try:
        alice, bob = im('alice@localhost'), im('bob@localhost')
        # a stored block list, to be loaded again for the online session
        alice.iq_ok('set', "<block xmlns='%s'><item jid='spam@example.org'/>"
                    "</block>" % NS_BLOCKING)
        check_modules(alice, True)
        off = [m[0] for m in SWITCHABLE]
        reload(srv, '\n'.join('module %s off' % m for m in off))
        for m in off:
            assert 'module %s switched off' % m in srv.stderr_text()
        check_modules(alice, False)
        # still in a chat
        bob.message('alice@localhost', 'during')
        alice.wait(is_message(body='during'))

        reload(srv, '\n'.join('module %s on' % m for m in off))
        check_modules(alice, True)
        el = alice.iq_ok('get', "<blocklist xmlns='%s'/>" % NS_BLOCKING)
        items = [i.get('jid') for i in el.iter('{%s}item' % NS_BLOCKING)]
        assert items == ['spam@example.org'], tostr(el)
        assert_alive(alice)
        assert_alive(bob)
    finally:
        im.close_all()
    # switching modules left nothing behind that the daemon trips on at
    # exit (the fixture checks the exit status and sanitizer reports)


def test_disco_switched_off(server_factory):
    srv = server_factory(extra='module disco off')
    im = IMFactory(srv)
    try:
        alice = im('alice@localhost')
        alice.iq_error('get', "<query xmlns='%s'/>" % NS_DISCO_INFO,
                       'service-unavailable', 'cancel', to='localhost')
        c, features = preauth(srv)
        c.close()
        reload(srv, '')
        el = alice.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_INFO,
                         to='localhost')
        query = el.find(q(NS_DISCO_INFO, 'query'))
        assert NS_PING in {f.get('var') for f in
                           query.findall(q(NS_DISCO_INFO, 'feature'))}
        # a new stream gets capabilities that match what disco says
        from im_helpers import login_features
        c, features = login_features(srv, 'alice@localhost')
        try:
            caps = features.find(q(NS_CAPS, 'c'))
            assert caps is not None and caps.get('ver') == caps_ver(query)
        finally:
            c.close()
    finally:
        im.close_all()


@pytest.mark.parametrize('statement,message', [
    ('module nosuch off', 'module nosuch: no such module'),
    ('module roster off', 'module roster: cannot be switched off'),
    ('module carbons maybe', 'on or off'),
])
def test_bad_module_statement(server_factory, statement, message):
    srv = server_factory(start=False)
    srv.c2s_port, srv.tls_port = 1, 2
    srv.extra = statement
    srv.conf.write_text(srv.config_text())
    r = subprocess.run([XMPPD_BIN, '-n', '-f', str(srv.conf)],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 and message in r.stderr, (r.returncode,
                                                       r.stderr)
    # the same on reload: refused, the running configuration kept
    srv.extra = ''
    srv.start()
    before = srv.stderr_text().count('reload failed')
    srv.extra = statement
    srv.conf.write_text(srv.config_text())
    assert srv.ctl('reload').returncode == 0
    deadline = time.monotonic() + 5
    while srv.stderr_text().count('reload failed') == before:
        assert time.monotonic() < deadline, srv.stderr_tail()
        time.sleep(0.02)
    assert message in srv.stderr_text()
    srv.assert_serves()
