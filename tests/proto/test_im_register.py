"""In-band registration (XEP-0077) with 'registration on': the stream
feature and disco feature, the form, registering before authentication
then logging in, conflicts, invalid usernames and missing fields,
password change, cancellation that deletes the account and all its data
(roster, offline messages, vCard, private storage) and removes it from
other rosters; registrations-per-ip; and with registration off (the
default): no feature and <service-unavailable/>."""

import os
from xml.sax.saxutils import escape

import pytest

from im_helpers import (NS_CAPS, NS_DISCO_INFO, NS_PRIVATE, NS_REGISTER,
                        NS_REGISTER_FEATURE, NS_VCARD, caps_ver, fresh_users,
                        is_message, login_features, subscribe_both)
from im_helpers import im  # noqa: F401 (the fixture)
from xmpp_raw import (NS_CLIENT, assert_sasl_failure,
                      assert_sasl_success, assert_stanza_error, q, tostr)

# XEP-0077 §3.1 leaves a malformed username open; RFC 6120 §8.3.3.8.
REGISTER_BAD_USERNAME = ('jid-malformed', 'modify')
# XEP-0077 §3.1.1: "MAY return a <not-acceptable/> stanza error if an
# unregistered entity attempts to register too many times"; 'wait'
# because it will work again later (limits { registrations-per-ip }).
REGISTER_RATE_LIMITED = ('not-acceptable', 'wait')
# XEP-0077 §3.1: a host that does not offer registration.
REGISTER_OFF = ('service-unavailable', 'cancel')
# XEP-0077 §3.2: after <remove/> the sessions end with this stream error.
CANCEL_STREAM_ERROR = 'not-authorized'

SERVER_OPTIONS = {'extra': 'registration on',
                  'limits': {'registrations-per-ip': 1000}}


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    server.assert_serves()


def new_name():
    return 'reg%s' % os.urandom(4).hex()


def preauth(server):
    """A client after STARTTLS and the stream restart, not authenticated;
    returns (client, features)."""
    c = server.client()
    try:
        c.open_stream()
        c.starttls()
        return c, c.open_stream()
    except BaseException:
        c.close()
        raise


def reg_iq(c, itype, inner='', iq_id='reg', to=None):
    attrs = "type='%s' id='%s'" % (itype, iq_id)
    if to:
        attrs += " to='%s'" % to
    c.send("<iq %s><query xmlns='%s'>%s</query></iq>" % (attrs, NS_REGISTER,
                                                         inner))
    el = c.expect(q(NS_CLIENT, 'iq'))
    assert el.get('id') == iq_id, tostr(el)
    return el


def fields(username, password):
    out = ''
    if username is not None:
        out += '<username>%s</username>' % escape(username)
    if password is not None:
        out += '<password>%s</password>' % escape(password)
    return out


def register(server, username, password):
    """Register on a fresh pre-auth stream; returns the answer."""
    c, _ = preauth(server)
    try:
        return reg_iq(c, 'set', fields(username, password))
    finally:
        c.close()


def sasl(server, user, password):
    c, _ = preauth(server)
    try:
        return c.sasl_plain(user, password)
    finally:
        c.close()


# --- advertising -------------------------------------------------------------

def test_stream_feature_before_auth(server):
    c, features = preauth(server)
    try:
        assert features.find(q(NS_REGISTER_FEATURE, 'register')) is not None, \
            tostr(features)
    finally:
        c.close()


def test_disco_feature_and_caps(server):
    [a] = fresh_users(server, 1)
    c, features = login_features(server, a)
    try:
        caps = features.find(q(NS_CAPS, 'c'))
        c.bind('d')
        c.send("<iq type='get' id='d1' to='localhost'><query xmlns='%s'/>"
               "</iq>" % NS_DISCO_INFO)
        el = c.expect(q(NS_CLIENT, 'iq'))
        query = el.find(q(NS_DISCO_INFO, 'query'))
        assert query is not None, tostr(el)
        assert NS_REGISTER in [f.get('var') for f in query.findall(
            q(NS_DISCO_INFO, 'feature'))], tostr(query)
        assert caps is not None and caps.get('ver') == caps_ver(query)
    finally:
        c.close()


# --- registering -------------------------------------------------------------

def test_registration_form(server):
    c, _ = preauth(server)
    try:
        el = reg_iq(c, 'get', to='localhost')
        assert el.get('type') == 'result', tostr(el)
        query = el.find(q(NS_REGISTER, 'query'))
        assert query is not None, tostr(el)
        assert query.find(q(NS_REGISTER, 'username')) is not None, tostr(el)
        assert query.find(q(NS_REGISTER, 'password')) is not None, tostr(el)
        assert query.find(q(NS_REGISTER, 'registered')) is None, tostr(el)
    finally:
        c.close()


def test_register_then_log_in(server):
    name = new_name()
    c, _ = preauth(server)
    try:
        el = reg_iq(c, 'set', fields(name, 'fresh secret'))
        assert el.get('type') == 'result', tostr(el)
        # XEP-0077 §3.1.1: then authenticate on the same stream
        assert_sasl_success(c.sasl_plain(name, 'fresh secret'))
        c.open_stream()
        assert c.bind('first') == '%s@localhost/first' % name
    finally:
        c.close()
    server.users['%s@localhost' % name] = 'fresh secret'
    c2 = server.login('%s@localhost' % name, resource='second')
    c2.close()
    assert_sasl_failure(sasl(server, name, 'wrong'), 'not-authorized')


@pytest.mark.parametrize('spelling', ['same', 'upper'])
def test_register_existing_username_conflict(server, spelling):
    [taken] = fresh_users(server, 1)
    user = taken.split('@')[0]
    el = register(server, user if spelling == 'same' else user.upper(),
                  'hijack')
    assert_stanza_error(el, 'iq', 'conflict', etype='cancel')
    assert_sasl_success(sasl(server, user, server.users[taken]))
    assert_sasl_failure(sasl(server, user, 'hijack'), 'not-authorized')


@pytest.mark.parametrize('username', ['bad@name', 'has space', 'a/b',
                                      'quo"te', 'x' * 1100],
                         ids=['at', 'space', 'slash', 'quote', 'too-long'])
def test_register_malformed_username(server, username):
    el = register(server, username, 'pw')
    assert_stanza_error(el, 'iq', REGISTER_BAD_USERNAME[0],
                        etype=REGISTER_BAD_USERNAME[1])


@pytest.mark.parametrize('username,password', [
    ('', 'pw'), (None, 'pw'), ('NAME', ''), ('NAME', None)],
    ids=['empty-username', 'no-username', 'empty-password', 'no-password'])
def test_register_missing_information(server, username, password):
    """XEP-0077 §3.1: all requested information, a password that is not
    empty, or <not-acceptable/>."""
    name = new_name()
    if username == 'NAME':
        username = name
    el = register(server, username, password)
    assert_stanza_error(el, 'iq', 'not-acceptable', etype='modify')
    assert_sasl_failure(sasl(server, name, password or 'pw'),
                        'not-authorized')


# --- registered users ----------------------------------------------------------

def test_registered_user_sees_registered(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_REGISTER)
    query = el.find(q(NS_REGISTER, 'query'))
    assert query.find(q(NS_REGISTER, 'registered')) is not None, tostr(el)
    assert query.findtext(q(NS_REGISTER, 'username')) == a.split('@')[0]


def test_change_password(server, im):
    [a] = fresh_users(server, 1)
    user = a.split('@')[0]
    old = server.users[a]
    c = im(a, presence=False)
    el = c.iq('set', "<query xmlns='%s'>%s</query>"
              % (NS_REGISTER, fields(user, 'brand new')), to='localhost')
    assert el.get('type') == 'result', tostr(el)
    assert_sasl_failure(sasl(server, user, old), 'not-authorized')
    assert_sasl_success(sasl(server, user, 'brand new'))
    # §3.3: an empty password never replaces the current one
    c.iq('set', "<query xmlns='%s'>%s</query>" % (NS_REGISTER,
                                                   fields(user, '')))
    assert_sasl_success(sasl(server, user, 'brand new'))


def test_cancel_registration_deletes_everything(server, im):
    alice, bob, gone = fresh_users(server, 3)
    ca = im(alice, roster=True)
    cb = im(bob)
    cg = im(gone, 'main', roster=True)
    other = im(gone, 'other', presence=False)
    subscribe_both(ca, cg)
    assert cg.iq('set', "<vCard xmlns='vcard-temp'><FN>Gone</FN></vCard>"
                 ).get('type') == 'result'
    assert cg.iq('set', "<query xmlns='%s'><x xmlns='urn:example:x'>kept"
                 "</x></query>" % NS_PRIVATE).get('type') == 'result'
    cg.presence(ptype='unavailable')
    cg.sync()
    cb.message(gone, 'stored for later')
    cb.absent(is_message(), 0.3)

    cg.send("<iq type='set' id='unreg1'><query xmlns='%s'><remove/></query>"
            "</iq>" % NS_REGISTER)
    el = cg.wait(lambda e: e.tag == q(NS_CLIENT, 'iq') and
                 e.get('id') == 'unreg1')
    assert el.get('type') == 'result', tostr(el)
    cg.expect_stream_error(CANCEL_STREAM_ERROR)
    other.expect_stream_error(CANCEL_STREAM_ERROR)
    item = ca.expect_push(gone)
    assert item.get('subscription') == 'remove', tostr(item)
    assert gone not in ca.roster()
    assert_sasl_failure(sasl(server, gone.split('@')[0],
                             server.users[gone]), 'not-authorized')

    # the name is free again, and nothing of the old account is left
    el = register(server, gone.split('@')[0], 'reborn')
    assert el.get('type') == 'result', tostr(el)
    server.users[gone] = 'reborn'
    cn = im(gone, roster=True, settle=False)
    cn.absent(is_message(), 0.4)
    assert cn.roster() == {}
    el = cn.iq('get', "<vCard xmlns='%s'/>" % NS_VCARD)
    assert_stanza_error(el, 'iq', 'item-not-found', etype='cancel')
    el = cn.iq_ok('get', "<query xmlns='%s'><x xmlns='urn:example:x'/>"
                  "</query>" % NS_PRIVATE)
    x = el.find(q(NS_PRIVATE, 'query')).find(q('urn:example:x', 'x'))
    assert x is not None and not (x.text or '').strip(), tostr(el)


# --- limits and switched off -------------------------------------------------

def test_registrations_per_ip(server_factory):
    srv = server_factory(extra='registration on',
                         limits={'registrations-per-ip': 2})
    names = [new_name() for _ in range(3)]
    for name in names[:2]:
        el = register(srv, name, 'pw')
        assert el.get('type') == 'result', tostr(el)
    el = register(srv, names[2], 'pw')
    assert_stanza_error(el, 'iq', REGISTER_RATE_LIMITED[0],
                        etype=REGISTER_RATE_LIMITED[1])
    assert_sasl_failure(sasl(srv, names[2], 'pw'), 'not-authorized')
    assert_sasl_success(sasl(srv, names[0], 'pw'))


def test_registration_off_by_default(server_factory):
    srv = server_factory()
    c, features = preauth(srv)
    try:
        assert features.find(q(NS_REGISTER_FEATURE, 'register')) is None, \
            tostr(features)
        el = reg_iq(c, 'get')
        assert_stanza_error(el, 'iq', REGISTER_OFF[0], etype=REGISTER_OFF[1])
        el = reg_iq(c, 'set', fields(new_name(), 'pw'), iq_id='reg2')
        assert_stanza_error(el, 'iq', REGISTER_OFF[0], etype=REGISTER_OFF[1])
        # the stream is still usable for authentication
        assert_sasl_success(c.sasl_plain('alice', srv.users[
            'alice@localhost']))
    finally:
        c.close()
