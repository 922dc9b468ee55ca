"""XEP-0357 push notifications with raw XML: the feature on the account's
bare JID, enabling and disabling (good and bad requests, the limit per
account, replacing a registration), and notifications to an "app server"
that is a local user's full JID: when the account is offline, when its
only session is detached waiting for XEP-0198 resumption, when it is
XEP-0352 inactive (a body, not a chat state); the summary form (count,
sender, no body unless configured) and the publish-options given at
enabling; an error from the app server (not of type wait) or its
affiliation notice removes the registration; the rate limits (per
registration and for the server); registrations kept across a restart
and removed with the account; xmppctl push list."""

import json
import re
import time

import pytest

from im_helpers import IMClient, IMFactory, fresh_users, is_iq
from im_helpers import im  # noqa: F401 (the fixture)
from sm_helpers import enable as sm_enable
from xmpp_raw import NS_CLIENT, assert_stanza_error, q, tostr

NS_PUSH = 'urn:xmpp:push:0'
NS_PUBSUB = 'http://jabber.org/protocol/pubsub'
NS_XDATA = 'jabber:x:data'
NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info'
NS_CSI = 'urn:xmpp:csi:0'
NS_CHATSTATES = 'http://jabber.org/protocol/chatstates'
PUBLISH_OPTIONS = 'http://jabber.org/protocol/pubsub#publish-options'
SUMMARY = 'urn:xmpp:push:summary'

# No rate limit in the module's daemon: every message that matters
# pushes at once (test_rate_limit has its own daemon).
SERVER_OPTIONS = {'limits': {'resume-timeout': '60s', 'push-interval': '0s',
                             'push-registrations': '3',
                             'sm-ack-seconds': '0', 'sm-ack-stanzas': '0'}}


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    server.assert_serves()


def options_form(secret):
    return ("<x xmlns='%s' type='submit'>"
            "<field var='FORM_TYPE'><value>%s</value></field>"
            "<field var='secret'><value>%s</value></field>"
            "<field var='endpoint'><value>https://push.example/v1</value>"
            "</field></x>" % (NS_XDATA, PUBLISH_OPTIONS, secret))


def enable_xml(jid, node, form=''):
    return "<enable xmlns='%s' jid='%s' node='%s'>%s</enable>" % (
        NS_PUSH, jid, node, form)


def is_publish(el):
    return (el.tag == q(NS_CLIENT, 'iq') and el.get('type') == 'set' and
            el.find(q(NS_PUBSUB, 'pubsub')) is not None)


is_publish.what = 'push notification'


def fields(x):
    out = {}
    for f in x.findall(q(NS_XDATA, 'field')):
        out[f.get('var')] = [v.text for v in f.findall(q(NS_XDATA, 'value'))]
    return out


def notification(app, answer='result'):
    """The next notification the app server gets, answered; returns
    (iq, node, summary fields, publish-options fields or None)."""
    iq = app.wait(is_publish)
    pubsub = iq.find(q(NS_PUBSUB, 'pubsub'))
    publish = pubsub.find(q(NS_PUBSUB, 'publish'))
    item = publish.find(q(NS_PUBSUB, 'item'))
    x = item.find(q(NS_PUSH, 'notification')).find(q(NS_XDATA, 'x'))
    assert x.get('type') == 'form', tostr(iq)
    po = pubsub.find(q(NS_PUBSUB, 'publish-options'))
    opts = fields(po.find(q(NS_XDATA, 'x'))) if po is not None else None
    if answer == 'result':
        app.send("<iq type='result' id='%s' to='%s'/>"
                 % (iq.get('id'), iq.get('from')))
    elif answer in ('error', 'wait'):
        cond = 'item-not-found' if answer == 'error' else 'resource-constraint'
        etype = 'cancel' if answer == 'error' else 'wait'
        app.send("<iq type='error' id='%s' to='%s'><error type='%s'>"
                 "<%s xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'"
                 "/></error></iq>" % (iq.get('id'), iq.get('from'), etype,
                                      cond))
    return iq, publish.get('node'), fields(x), opts


def no_notification(app, duration=0.5):
    app.absent(is_publish, duration)


def sessions_of(server, jid):
    r = server.ctl('sessions', '--json')
    assert r.returncode == 0, r.stderr
    return [s for s in json.loads(r.stdout) if s['jid'].startswith(jid + '/')]


def wait_for(cond, timeout=10.0, what='condition'):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError('timed out waiting for %s' % what)


def go_offline(server, c):
    c.close_stream()
    wait_for(lambda: not sessions_of(server, c.bare), what='%s offline'
             % c.bare)


def enabled_trio(im, server, secret='s3cr3t', node='node-1'):
    """alice (enabled push to the app server with a secret), bob, app."""
    alice, bob, app = fresh_users(server, 3)
    app_c = im(app, resource='app')
    a = im(alice)
    b = im(bob)
    a.iq_ok('set', enable_xml(app_c.full, node, options_form(secret)))
    return a, b, app_c


# --- discovery -------------------------------------------------------------

def disco_features(c, to):
    el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=to)
    return [f.get('var') for f in
            el.find(q(NS_DISCO_INFO, 'query')).findall(q(NS_DISCO_INFO,
                                                         'feature'))]


def test_feature_on_the_account(im, server):
    (alice,) = fresh_users(server, 1)
    a = im(alice)
    assert NS_PUSH in disco_features(a, alice)
    # An account feature: not the server's.
    assert NS_PUSH not in disco_features(a, 'localhost')


def test_module_off_advertises_nothing(server_factory):
    srv = server_factory(extra='module push off')
    f = IMFactory(srv)
    try:
        a = f('alice@localhost')
        assert NS_PUSH not in disco_features(a, 'alice@localhost')
        a.iq_error('set', enable_xml('app@localhost/x', 'n'),
                   'service-unavailable', 'cancel')
    finally:
        f.close_all()


# --- enable and disable ----------------------------------------------------

@pytest.mark.parametrize('payload,why', [
    ("<enable xmlns='%s' node='n'/>" % NS_PUSH, 'no jid'),
    ("<enable xmlns='%s' jid='' node='n'/>" % NS_PUSH, 'empty jid'),
    ("<enable xmlns='%s' jid='@localhost' node='n'/>" % NS_PUSH,
     'invalid jid'),
    ("<enable xmlns='%s' jid='push.example'/>" % NS_PUSH, 'no node'),
    ("<enable xmlns='%s' jid='push.example' node='n'><x xmlns='%s' "
     "type='submit'><field var='FORM_TYPE'><value>urn:other</value></field>"
     "</x></enable>" % (NS_PUSH, NS_XDATA), 'wrong FORM_TYPE'),
    ("<enable xmlns='%s' jid='push.example' node='n'><x xmlns='%s' "
     "type='submit'><field var='secret'><value>x</value></field>"
     "</x></enable>" % (NS_PUSH, NS_XDATA), 'no FORM_TYPE'),
    ("<disable xmlns='%s'/>" % NS_PUSH, 'disable without jid'),
])
def test_bad_requests(im, server, payload, why):
    (alice,) = fresh_users(server, 1)
    a = im(alice)
    a.iq_error('set', payload, 'bad-request', 'modify')


def test_get_is_a_bad_request(im, server):
    (alice,) = fresh_users(server, 1)
    a = im(alice)
    a.iq_error('get', enable_xml('push.example', 'n'), 'bad-request',
               'modify')


def test_only_for_ones_own_account(im, server):
    alice, bob = fresh_users(server, 2)
    a = im(alice)
    im(bob)
    a.iq_error('set', enable_xml('push.example', 'n'), 'forbidden',
               'auth', to=bob)
    # To one's own bare JID, or without 'to': both fine.
    a.iq_ok('set', enable_xml('push.example', 'n'), to=alice)
    a.iq_ok('set', "<disable xmlns='%s' jid='push.example'/>" % NS_PUSH)


def test_limit_per_account_and_replacing(im, server):
    alice, bob, app = fresh_users(server, 3)
    app_c = im(app, resource='app')
    a = im(alice)
    b = im(bob)
    for i in range(3):
        a.iq_ok('set', enable_xml(app_c.full, 'n%d' % i, options_form('x')))
    el = a.iq('set', enable_xml(app_c.full, 'n3'))
    assert_stanza_error(el, 'iq', 'not-allowed', etype='cancel')
    # Enabling a node again replaces it (its form), within the limit.
    a.iq_ok('set', enable_xml(app_c.full, 'n1', options_form('new')))
    # Disable one node, then every node of the JID but one is gone.
    a.iq_ok('set', "<disable xmlns='%s' jid='%s' node='n0'/>"
            % (NS_PUSH, app_c.full))
    a.iq_ok('set', enable_xml(app_c.full, 'n3'))      # room again
    a.iq_ok('set', "<disable xmlns='%s' jid='%s' node='n3'/>"
            % (NS_PUSH, app_c.full))
    go_offline(server, a)
    b.message(alice, 'hello')
    got = {}
    for _ in range(2):
        _, node, summary, opts = notification(app_c)
        got[node] = opts['secret']
    assert got == {'n1': ['new'], 'n2': ['x']}, got
    no_notification(app_c)
    # Disabling the whole JID leaves nothing.
    a2 = im(alice)
    a2.iq_ok('set', "<disable xmlns='%s' jid='%s'/>" % (NS_PUSH, app_c.full))
    go_offline(server, a2)
    b.message(alice, 'again')
    no_notification(app_c)


# --- notifications ---------------------------------------------------------

def test_offline_account_gets_a_summary(im, server):
    a, b, app = enabled_trio(im, server)
    alice = a.bare
    go_offline(server, a)
    b.message(alice, 'secret text')
    iq, node, summary, opts = notification(app)
    assert iq.get('from') == alice and iq.get('to') == app.full, tostr(iq)
    assert node == 'node-1'
    assert summary['FORM_TYPE'] == [SUMMARY], tostr(iq)
    assert summary['message-count'] == ['1'], tostr(iq)
    assert summary['last-message-sender'] == [b.full], tostr(iq)
    assert 'last-message-body' not in summary, tostr(iq)
    assert 'secret text' not in tostr(iq)
    assert opts == {'FORM_TYPE': [PUBLISH_OPTIONS], 'secret': ['s3cr3t'],
                    'endpoint': ['https://push.example/v1']}, tostr(iq)
    # The count grows while the account stays away...
    b.message(alice, 'two')
    _, _, summary, _ = notification(app)
    assert summary['message-count'] == ['2'], summary
    # ... and starts over once it has been back.
    a2 = IMClient(server.login(alice), alice)
    a2.presence()
    a2.sync()
    go_offline(server, a2)
    b.message(alice, 'three')
    _, _, summary, _ = notification(app)
    assert summary['message-count'] == ['1'], summary


def test_what_does_not_push(im, server):
    a, b, app = enabled_trio(im, server)
    alice = a.bare
    go_offline(server, a)
    # A chat state alone, a receipt alone, a headline: nothing.
    b.send("<message to='%s' type='chat'><composing xmlns='%s'/></message>"
           % (alice, NS_CHATSTATES))
    b.send("<message to='%s'><received xmlns='urn:xmpp:receipts' id='x'/>"
           "</message>" % alice)
    b.message(alice, 'news', mtype='headline')
    no_notification(app)
    # An OMEMO message without a body and a call proposal do.
    b.send("<message to='%s' type='chat'><encrypted xmlns='eu.siacs."
           "conversations.axolotl'><header sid='1'/></encrypted></message>"
           % alice)
    notification(app)
    b.send("<message to='%s'><propose xmlns='urn:xmpp:jingle-message:0' "
           "id='call1'><description xmlns='urn:xmpp:jingle:apps:rtp:1' "
           "media='audio'/></propose></message>" % alice)
    notification(app)
    # So does an invitation to a room (XEP-0249).
    b.send("<message to='%s'><x xmlns='jabber:x:conference' "
           "jid='room@conference.localhost'/></message>" % alice)
    notification(app)


def test_online_account_gets_no_push(im, server):
    a, b, app = enabled_trio(im, server)
    b.message(a.bare, 'hi')
    a.wait(lambda el: el.tag == q(NS_CLIENT, 'message'))
    no_notification(app)


def test_detached_session_waiting_for_resumption(im, server):
    a, b, app = enabled_trio(im, server)
    sm_enable(a)
    a.raw.close()
    wait_for(lambda: [s for s in sessions_of(server, a.bare)
                      if s['sm'] == 'waiting'], what='a waiting session')
    b.message(a.bare, 'while away')
    _, _, summary, _ = notification(app)
    assert summary['message-count'] == ['1'], summary


def test_csi_inactive_body_pushes_chat_state_does_not(im, server):
    a, b, app = enabled_trio(im, server)
    a.send("<inactive xmlns='%s'/>" % NS_CSI)
    a.sync()
    b.send("<message to='%s' type='chat'><composing xmlns='%s'/></message>"
           % (a.bare, NS_CHATSTATES))
    no_notification(app)
    b.message(a.bare, 'wake up')
    _, _, summary, _ = notification(app)
    assert summary['message-count'] == ['1'], summary
    # Active again: no push for what reaches it.
    a.send("<active xmlns='%s'/>" % NS_CSI)
    a.sync()
    b.message(a.bare, 'seen')
    no_notification(app)


def test_app_server_error_removes_registration(im, server):
    a, b, app = enabled_trio(im, server)
    go_offline(server, a)
    # A temporary error (type wait) keeps it.
    b.message(a.bare, 'zero')
    notification(app, answer='wait')
    app.sync()
    b.message(a.bare, 'one')
    notification(app, answer='error')
    app.sync()
    b.message(a.bare, 'two')
    no_notification(app, 1.0)
    # Gone from storage too: after the account comes back and leaves
    # (its registrations loaded again), still nothing.
    a2 = IMClient(server.login(a.bare), a.bare)
    a2.presence()
    a2.sync()
    go_offline(server, a2)
    b.message(a.bare, 'three')
    no_notification(app, 1.0)


def affiliation_none(client, account, node):
    client.send("<message to='%s'><pubsub xmlns='%s' node='%s'>"
                "<affiliation jid='%s' affiliation='none'/></pubsub>"
                "</message>" % (account, NS_PUBSUB, node, account))
    client.sync()


def test_app_server_ends_the_registration(im, server):
    """XEP-0357 §8: the app server's affiliation change notice removes
    its registration; the same notice from anyone else does nothing."""
    a, b, app = enabled_trio(im, server)
    alice = a.bare
    go_offline(server, a)
    affiliation_none(b, alice, 'node-1')
    affiliation_none(app, alice, 'other-node')
    b.message(alice, 'still')
    notification(app)
    affiliation_none(app, alice, 'node-1')
    b.message(alice, 'gone')
    no_notification(app, 1.0)
    r = server.ctl('push', 'list', alice, '--json')
    assert r.returncode == 0 and json.loads(r.stdout) == [], r.stdout


def test_account_deletion_removes_registrations(im, server):
    a, b, app = enabled_trio(im, server)
    alice = a.bare
    go_offline(server, a)
    b.message(alice, 'before')
    notification(app)
    r = server.ctl('deluser', alice)
    assert r.returncode == 0, r.stderr
    r = server.ctl('adduser', alice, '--password-stdin',
                   input=server.users[alice])
    assert r.returncode == 0, r.stderr
    b.message(alice, 'after')
    no_notification(app, 1.0)
    r = server.ctl('push', 'list', alice, '--json')
    assert r.returncode == 0 and json.loads(r.stdout) == [], r.stdout


# --- rate limit, configuration, persistence --------------------------------

def test_rate_limit(server_factory):
    srv = server_factory(limits={'push-interval': '2s'},
                         users={'alice@localhost': 'a', 'bob@localhost': 'b',
                                'app@localhost': 'p'})
    f = IMFactory(srv)
    try:
        app = f('app@localhost', resource='app')
        a = f('alice@localhost')
        b = f('bob@localhost')
        a.iq_ok('set', enable_xml(app.full, 'n'))
        go_offline(srv, a)
        b.message('alice@localhost', 'm1')
        _, _, summary, opts = notification(app)
        t1 = time.monotonic()
        assert summary['message-count'] == ['1'], summary
        assert opts is None
        b.message('alice@localhost', 'm2')
        b.message('alice@localhost', 'm3')
        no_notification(app, 1.0)
        _, _, summary, _ = notification(app)
        assert time.monotonic() - t1 >= 1.8
        assert summary['message-count'] == ['3'], summary
        no_notification(app, 0.5)
    finally:
        f.close_all()


def test_persistence_and_body_configuration(server_factory):
    users = {'alice@localhost': 'a', 'bob@localhost': 'b',
             'app@localhost': 'p'}
    srv = server_factory(extra='push-include-body on\n'
                         'push-include-sender off', users=users)
    f = IMFactory(srv)
    try:
        app = f('app@localhost', resource='app')
        a = f('alice@localhost')
        a.iq_ok('set', enable_xml(app.full, 'kept', options_form('k')))
        a.iq_ok('set', enable_xml('push.example', 'bare'))
    finally:
        f.close_all()
    # xmppctl push list: the registrations, the option names only.
    r = srv.ctl('push', 'list', 'alice@localhost', '--json')
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [(x['jid'], x['node'], x['options']) for x in rows] == [
        (app.full, 'kept', ['secret', 'endpoint']),
        ('push.example', 'bare', [])], rows
    assert all(re.match(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$',
                        x['created']) for x in rows), rows
    r = srv.ctl('push', 'list', 'alice@localhost')
    assert r.returncode == 0, r.stderr
    assert 'https://push.example' not in r.stdout, r.stdout
    assert 'kept' in r.stdout and 'secret' in r.stdout, r.stdout
    r = srv.ctl('push', 'list', 'not a jid')
    assert r.returncode != 0
    srv.stop()
    srv.start(create_users=False)
    f = IMFactory(srv)
    try:
        app = f('app@localhost', resource='app')
        b = f('bob@localhost')
        b.message('alice@localhost', 'the body')
        _, node, summary, opts = notification(app)
        assert node == 'kept'
        assert opts['secret'] == ['k'], opts
        assert summary['last-message-body'] == ['the body'], summary
        assert 'last-message-sender' not in summary, summary
    finally:
        f.close_all()


def test_switched_off_with_a_notification_waiting(server_factory):
    from test_modules import reload
    srv = server_factory(limits={'push-interval': '2s'},
                         users={'alice@localhost': 'a', 'bob@localhost': 'b',
                                'app@localhost': 'p'})
    f = IMFactory(srv)
    try:
        app = f('app@localhost', resource='app')
        a = f('alice@localhost')
        b = f('bob@localhost')
        a.iq_ok('set', enable_xml(app.full, 'n'))
        go_offline(srv, a)
        b.message('alice@localhost', 'm1')
        notification(app, answer=None)      # its answer never comes
        b.message('alice@localhost', 'm2')  # waits for the interval
        b.sync()
        reload(srv, 'module push off')
        assert 'module push switched off' in srv.stderr_text()
        no_notification(app, 2.5)
        # Back on: the stored registration is loaded again.
        reload(srv, '')
        b.message('alice@localhost', 'm3')
        _, _, summary, _ = notification(app)
        assert summary['message-count'] == ['1'], summary
    finally:
        f.close_all()


def test_server_wide_rate(server_factory):
    """limits { push-rate 1 }: two registrations, one message: the second
    notification waits for the bucket (about a second), then goes."""
    srv = server_factory(limits={'push-interval': '0s', 'push-rate': '1'},
                         users={'alice@localhost': 'a', 'bob@localhost': 'b',
                                'app@localhost': 'p'})
    f = IMFactory(srv)
    try:
        app = f('app@localhost', resource='app')
        a = f('alice@localhost')
        b = f('bob@localhost')
        a.iq_ok('set', enable_xml(app.full, 'n1'))
        a.iq_ok('set', enable_xml(app.full, 'n2'))
        go_offline(srv, a)
        time.sleep(1.1)                     # the bucket is full: 1
        b.message('alice@localhost', 'm1')
        _, first, _, _ = notification(app)
        t1 = time.monotonic()
        _, second, summary, _ = notification(app)
        assert time.monotonic() - t1 >= 0.7
        assert {first, second} == {'n1', 'n2'}
        assert summary['message-count'] == ['1'], summary
    finally:
        f.close_all()
