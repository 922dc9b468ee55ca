"""XEP-0077 in-band registration, beyond the acceptance tests
(test_im_register.py): the exact error for each refusal, no password echoed
back, one request in flight per stream, a stream that goes away while its
registration is pending, plaintext streams, and removal's stream errors."""

import os

import pytest

from im_helpers import im  # noqa: F401  (fixture)
from xmpp_raw import (NS_BIND, NS_CLIENT, NS_STREAM, RawClient,
                      assert_sasl_failure, assert_sasl_success,
                      assert_stanza_error, login, q, tostr)

NS_REGISTER = 'jabber:iq:register'
NS_REGISTER_FEATURE = 'http://jabber.org/features/iq-register'
NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info'

# Every client here comes from 127.0.0.1: a large hourly quota for the
# module's daemon, a small one in test_rate_limit's own.
SERVER_OPTIONS = {'extra': 'registration on',
                  'limits': {'registrations-per-ip': 1000}}

_n = [0]


def fresh_name(prefix='r'):
    _n[0] += 1
    return '%s%d%s' % (prefix, _n[0], os.urandom(3).hex())


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    server.assert_serves()


def tls_stream(server, direct=False):
    """An encrypted, unauthenticated stream; returns (client, features)."""
    if direct:
        c = RawClient(server.tls_port, tls=True)
        return c, c.open_stream()
    c = server.client()
    c.open_stream()
    c.starttls()
    return c, c.open_stream()


def register_xml(user, password, iq_id='reg1', extra='', to=None):
    fields = ''
    if user is not None:
        fields += '<username>%s</username>' % user
    if password is not None:
        fields += '<password>%s</password>' % password
    return ("<iq type='set' id='%s'%s><query xmlns='%s'>%s%s</query></iq>"
            % (iq_id, " to='%s'" % to if to else '', NS_REGISTER, fields,
               extra))


def register(server, user, password, iq_id='reg1'):
    """Register on a fresh stream; returns (client, answer)."""
    c, _ = tls_stream(server)
    c.send(register_xml(user, password, iq_id))
    return c, c.expect(q(NS_CLIENT, 'iq'))


def assert_result(el, iq_id):
    assert el.get('type') == 'result' and el.get('id') == iq_id, tostr(el)


def assert_no_password(el, password):
    assert password not in tostr(el), 'password echoed: %s' % tostr(el)


def can_login(server, user, password, mechanism='PLAIN'):
    try:
        c = login(server.c2s_port, user, password, mechanism=mechanism,
                  bind=False)
    except AssertionError:
        return False
    c.close()
    return True


# --- before authentication ---------------------------------------------------

@pytest.mark.parametrize('direct', [False, True])
def test_feature_after_tls_only(server, direct):
    if not direct:
        c = server.client()
        before = c.open_stream()
        assert before.find(q(NS_REGISTER_FEATURE, 'register')) is None, \
            tostr(before)
        c.close()
    c, features = tls_stream(server, direct)
    assert features.find(q(NS_REGISTER_FEATURE, 'register')) is not None, \
        tostr(features)
    c.close()


def test_get_fields(server):
    c, _ = tls_stream(server)
    c.send("<iq type='get' id='g1' to='localhost'>"
           "<query xmlns='%s'/></iq>" % NS_REGISTER)
    el = c.expect(q(NS_CLIENT, 'iq'))
    assert_result(el, 'g1')
    assert el.get('from') == 'localhost', tostr(el)
    query = el.find(q(NS_REGISTER, 'query'))
    assert query is not None, tostr(el)
    assert [ch.tag for ch in query] == [
        q(NS_REGISTER, 'instructions'), q(NS_REGISTER, 'username'),
        q(NS_REGISTER, 'password')], tostr(el)
    assert query.find(q(NS_REGISTER, 'registered')) is None
    c.close()


def test_client_from_is_ignored(server):
    """Before authentication the client has no JID: a 'from' it invents is
    not where the answer is addressed."""
    c, _ = tls_stream(server)
    c.send("<iq type='get' id='g3' from='victim@example.org/x'>"
           "<query xmlns='%s'/></iq>" % NS_REGISTER)
    el = c.expect(q(NS_CLIENT, 'iq'))
    assert_result(el, 'g3')
    assert el.get('to') is None, tostr(el)
    c.close()


def test_iq_before_tls_ends_stream(server):
    c = server.client()
    c.open_stream()
    c.send("<iq type='get' id='g1'><query xmlns='%s'/></iq>" % NS_REGISTER)
    c.expect_stream_error('not-authorized')
    c.close()


@pytest.mark.parametrize('mechanism', ['PLAIN', 'SCRAM-SHA-1',
                                       'SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS'])
def test_register_then_login_each_mechanism(server, mechanism):
    user, password = fresh_name(), 'p\u00e4ss w\u00f6rd'
    c, el = register(server, user, password)
    assert_result(el, 'reg1')
    c.close()
    assert can_login(server, user, password, mechanism)
    assert not can_login(server, user, password + 'x', mechanism)


def test_login_on_the_registering_stream(server):
    """XEP-0077 §3.1.1: register, then authenticate on the same stream."""
    user, password = fresh_name(), 'secret'
    c, el = register(server, user, password)
    assert_result(el, 'reg1')
    assert_sasl_success(c.sasl_plain(user, password))
    features = c.open_stream()
    assert features.find(q(NS_BIND, 'bind')) is not None, tostr(features)
    assert c.bind('here').startswith('%s@localhost/' % user)
    c.close()


def test_username_is_nodeprepped(server):
    base = fresh_name('mixed')
    c, el = register(server, base.upper(), 'secret')
    assert_result(el, 'reg1')
    c.close()
    assert can_login(server, base, 'secret')
    # The same name in another case is the same account.
    c, el = register(server, base.capitalize(), 'other')
    assert_stanza_error(el, 'iq', 'conflict', 'cancel', sid='reg1')
    c.close()


def test_conflict_does_not_echo_password(server):
    c, el = register(server, 'alice', 'not-alices-password')
    assert_stanza_error(el, 'iq', 'conflict', 'cancel', sid='reg1')
    assert_no_password(el, 'not-alices-password')
    c.close()
    assert can_login(server, 'alice', server.users['alice@localhost'])


# XEP-0077 §3.1: missing or empty fields are <not-acceptable/>; a name
# that cannot be a localpart is RFC 6120 §8.3.3.8 <jid-malformed/>.
MISSING, MALFORMED = ('not-acceptable', 'modify'), ('jid-malformed', 'modify')


@pytest.mark.parametrize('user,password,error', [
    (None, 'secret', MISSING),           # no <username/>
    ('USER', None, MISSING),             # no <password/>
    ('', 'secret', MISSING),             # empty username
    ('USER', '', MISSING),               # empty password (§3.1 note)
    ('a b', 'secret', MALFORMED),        # space: prohibited by Nodeprep
    ('a@b', 'secret', MALFORMED),        # '@' prohibited by Nodeprep
    ('x' * 1024, 'secret', MALFORMED),   # longer than 1023 bytes
    ('USER', 'x' * 1024, MISSING),       # password longer than 1023 bytes
    ('USER', 'private\ue000', MISSING),  # private use: SASLprep refuses
])
def test_invalid_registration(server, user, password, error):
    name = fresh_name()
    user = user.replace('USER', name) if user is not None else None
    c, el = register(server, user, password)
    assert_stanza_error(el, 'iq', error[0], error[1], sid='reg1')
    if password:
        assert_no_password(el, password)
    c.close()
    if user == name:
        assert not can_login(server, name, password or 'secret')


def test_remove_before_auth(server):
    c, _ = tls_stream(server)
    c.send("<iq type='set' id='u1'><query xmlns='%s'><remove/></query></iq>"
           % NS_REGISTER)
    assert_stanza_error(c.expect(q(NS_CLIENT, 'iq')), 'iq',
                        'unexpected-request', sid='u1')
    c.close()


def test_other_domain_before_auth(server):
    c, _ = tls_stream(server)
    c.send(register_xml(fresh_name(), 'secret', to='example.org'))
    assert_stanza_error(c.expect(q(NS_CLIENT, 'iq')), 'iq',
                        'service-unavailable', sid='reg1')
    c.close()


def test_two_payloads_is_bad_request(server):
    c, _ = tls_stream(server)
    c.send("<iq type='get' id='g2'><query xmlns='%s'/><query xmlns='%s'/>"
           "</iq>" % (NS_REGISTER, NS_REGISTER))
    assert_stanza_error(c.expect(q(NS_CLIENT, 'iq')), 'iq', 'bad-request',
                        sid='g2')
    c.close()


def test_one_registration_in_flight_per_stream(server):
    """Two sets in one write: the second is refused while the first waits
    for the store; only the first account exists."""
    first, second = fresh_name(), fresh_name()
    c, _ = tls_stream(server)
    c.send(register_xml(first, 'secret', 'a') +
           register_xml(second, 'secret', 'b'))
    answers = {}
    for _ in range(2):
        el = c.expect(q(NS_CLIENT, 'iq'))
        answers[el.get('id')] = el
    assert_stanza_error(answers['b'], 'iq', 'resource-constraint', 'wait')
    assert_result(answers['a'], 'a')
    c.close()
    assert can_login(server, first, 'secret')
    assert not can_login(server, second, 'secret')


def test_stream_closed_while_pending(server):
    """The stream ends in the same write as the request: the registration
    is dropped, not half done, and nothing is sent after the close."""
    user = fresh_name()
    c, _ = tls_stream(server)
    c.send(register_xml(user, 'secret') + '</stream:stream>')
    c.expect_stream_end()
    c.close()
    assert not can_login(server, user, 'secret')


def test_disco_feature(server):
    c = server.login('alice@localhost', resource='disco')
    c.send("<iq type='get' id='d1' to='localhost'><query xmlns='%s'/></iq>"
           % NS_DISCO_INFO)
    el = c.expect_stanza('iq')
    assert_result(el, 'd1')
    feats = [f.get('var') for f in el.iter(q(NS_DISCO_INFO, 'feature'))]
    assert NS_REGISTER in feats, tostr(el)
    c.close()


# --- after authentication ----------------------------------------------------

def new_account(server):
    user, password = fresh_name(), 'first-secret'
    c, el = register(server, user, password)
    assert_result(el, 'reg1')
    c.close()
    server.users['%s@localhost' % user] = password
    return user, password


@pytest.mark.parametrize('to', [None, 'localhost'])
def test_get_when_registered(server, to):
    user, _ = new_account(server)
    c = server.login('%s@localhost' % user, resource='r')
    c.send("<iq type='get' id='g'%s><query xmlns='%s'/></iq>"
           % (" to='%s'" % to if to else '', NS_REGISTER))
    el = c.expect_stanza('iq')
    assert_result(el, 'g')
    query = el.find(q(NS_REGISTER, 'query'))
    assert query is not None, tostr(el)
    assert query.find(q(NS_REGISTER, 'registered')) is not None, tostr(el)
    assert query.findtext(q(NS_REGISTER, 'username')) == user, tostr(el)
    assert query.find(q(NS_REGISTER, 'password')) is None, tostr(el)
    c.close()


def test_to_another_user_is_not_registration(server):
    c = server.login('alice@localhost', resource='x')
    c.send("<iq type='get' id='o' to='bob@localhost'><query xmlns='%s'/>"
           "</iq>" % NS_REGISTER)
    assert_stanza_error(c.expect_stanza('iq'), 'iq', 'service-unavailable',
                        sid='o')
    c.close()


def change_xml(user, password, iq_id='c1'):
    return register_xml(user, password, iq_id, to='localhost')


def test_passwords_never_logged(server):
    """The daemon logs at debug level here; no password may appear."""
    first, second = 'first-%s' % os.urandom(6).hex(), \
        'second-%s' % os.urandom(6).hex()
    user = fresh_name()
    c, el = register(server, user, first)
    assert_result(el, 'reg1')
    c.close()
    c = server.login('%s@localhost' % user, password=first, resource='r')
    c.send(change_xml(user, second))
    assert_result(c.expect_stanza('iq'), 'c1')
    c.close()
    assert can_login(server, user, second)
    log = server.stderr_text()
    assert '%s@localhost' % user in log      # the log is there
    assert first not in log and second not in log


def test_change_password(server):
    user, old = new_account(server)
    c = server.login('%s@localhost' % user, resource='r')
    c.send(change_xml(user, 'new-secret'))
    el = c.expect_stanza('iq')
    assert_result(el, 'c1')
    c.close()
    assert can_login(server, user, 'new-secret', 'SCRAM-SHA-256')
    assert can_login(server, user, 'new-secret', 'SCRAM-SHA-1')
    assert not can_login(server, user, old)


@pytest.mark.parametrize('which', ['other-user', 'no-username',
                                   'no-password', 'empty-password',
                                   'prohibited'])
def test_change_password_refused(server, which):
    user, old = new_account(server)
    xml = {
        'other-user': change_xml('alice', 'hijack-secret'),
        'no-username': change_xml(None, 'hijack-secret'),
        'no-password': change_xml(user, None),
        'empty-password': change_xml(user, ''),
        'prohibited': change_xml(user, 'private\ue000'),
    }[which]
    c = server.login('%s@localhost' % user, resource='r')
    c.send(xml)
    el = c.expect_stanza('iq')
    assert_stanza_error(el, 'iq', 'bad-request', 'modify', sid='c1')
    # §3.3: no original XML in password-change errors.
    assert el.find(q(NS_REGISTER, 'query')) is None, tostr(el)
    c.close()
    # §3.3: the existing password is kept.
    assert can_login(server, user, old)
    assert can_login(server, 'alice', server.users['alice@localhost'])


def test_remove_with_other_children_is_bad_request(server):
    user, password = new_account(server)
    c = server.login('%s@localhost' % user, resource='r')
    c.send("<iq type='set' id='u1'><query xmlns='%s'><remove/>"
           "<username>%s</username></query></iq>" % (NS_REGISTER, user))
    assert_stanza_error(c.expect_stanza('iq'), 'iq', 'bad-request',
                        sid='u1')
    c.close()
    assert can_login(server, user, password)


def test_remove_closes_every_session(server):
    user, password = new_account(server)
    jid = '%s@localhost' % user
    a = server.login(jid, resource='a')
    b = server.login(jid, resource='b')
    a.send("<iq type='set' id='u1'><query xmlns='%s'><remove/></query></iq>"
           % NS_REGISTER)
    # §3.2: the result, then <not-authorized/> on every session.
    el = a.expect_stanza('iq')
    assert_result(el, 'u1')
    a.expect_stream_error('not-authorized')
    while True:
        el = b.next_element()
        if el.tag == q(NS_CLIENT, 'presence'):
            continue
        assert el.tag == q(NS_STREAM, 'error'), tostr(el)
        break
    a.close()
    b.close()
    c = RawClient(server.c2s_port)
    c.open_stream()
    c.starttls()
    c.open_stream()
    assert_sasl_failure(c.sasl_plain(user, password), 'not-authorized')
    c.close()
    users = server.ctl('users').stdout
    assert jid not in users, users
    # The name is free again.
    c, el = register(server, user, 'again')
    assert_result(el, 'reg1')
    c.close()
    assert can_login(server, user, 'again')


def test_remove_takes_account_out_of_rosters(server, im):
    """The removed account leaves other users' rosters, with a push to
    their interested resources (RFC 6121 §2.1.6), and comes back empty."""
    user, password = new_account(server)
    gone = '%s@localhost' % user
    watcher = im('bob@localhost', 'watcher', roster=True, presence=False)
    assert watcher.roster_set(gone, name='Soon gone').get('type') == \
        'result'
    assert watcher.expect_push(gone).get('name') == 'Soon gone'
    c = im(gone, 'main', roster=True, presence=False)
    assert c.roster_set('bob@localhost').get('type') == 'result'
    c.expect_push('bob@localhost')
    c.send("<iq type='set' id='u1'><query xmlns='%s'><remove/></query></iq>"
           % NS_REGISTER)
    assert_result(c.raw.expect(q(NS_CLIENT, 'iq')), 'u1')
    c.raw.expect_stream_error('not-authorized')
    item = watcher.expect_push(gone)
    assert item.get('subscription') == 'remove', tostr(item)
    assert gone not in watcher.roster()
    c, el = register(server, user, 'reborn')
    assert_result(el, 'reg1')
    c.close()
    server.users[gone] = 'reborn'
    assert im(gone, 'new', presence=False).roster() == {}


# --- other configurations ----------------------------------------------------

def test_disabled(server_factory):
    srv = server_factory()
    c, features = tls_stream(srv)
    assert features.find(q(NS_REGISTER_FEATURE, 'register')) is None, \
        tostr(features)
    # XEP-0077 §3.1: not supported -> <service-unavailable/>, and the
    # stream stays usable.
    c.send("<iq type='get' id='g1'><query xmlns='%s'/></iq>" % NS_REGISTER)
    assert_stanza_error(c.expect_stanza('iq'), 'iq', 'service-unavailable',
                        sid='g1')
    c.close()
    c = srv.login('alice@localhost', resource='r')
    c.send("<iq type='get' id='g2'><query xmlns='%s'/></iq>" % NS_REGISTER)
    assert_stanza_error(c.expect_stanza('iq'), 'iq', 'service-unavailable',
                        sid='g2')
    c.send("<iq type='get' id='d1' to='localhost'><query xmlns='%s'/></iq>"
           % NS_DISCO_INFO)
    el = c.expect_stanza('iq')
    feats = [f.get('var') for f in el.iter(q(NS_DISCO_INFO, 'feature'))]
    assert NS_REGISTER not in feats, tostr(el)
    c.close()


def test_plaintext_refused(server_factory):
    """starttls optional: no registration or password change in clear."""
    srv = server_factory(starttls='optional', extra='registration on')
    c = srv.client()
    features = c.open_stream()
    assert features.find(q(NS_REGISTER_FEATURE, 'register')) is None, \
        tostr(features)
    c.send(register_xml(fresh_name(), 'secret'))
    el = c.expect(q(NS_CLIENT, 'iq'))
    assert_stanza_error(el, 'iq', 'not-authorized', 'modify', sid='reg1')
    assert_no_password(el, 'secret')
    c.close()
    # PLAIN needs TLS (RFC 6120 §13.8); SCRAM does not.
    c = srv.login('alice@localhost', resource='r', tls=None,
                  mechanism='SCRAM-SHA-256')
    c.send(change_xml('alice', 'sniffed-secret'))
    assert_stanza_error(c.expect_stanza('iq'), 'iq', 'not-authorized',
                        'modify', sid='c1')
    c.close()
    assert can_login(srv, 'alice', srv.users['alice@localhost'])


def test_rate_limit(server_factory):
    srv = server_factory(extra='registration on',
                         limits={'registrations-per-ip': 2})
    # Refusals (here a conflict) do not count.
    c, el = register(srv, 'alice', 'whatever')
    assert_stanza_error(el, 'iq', 'conflict', sid='reg1')
    c.close()
    names = [fresh_name() for _ in range(3)]
    for name in names[:2]:
        c, el = register(srv, name, 'secret')
        assert_result(el, 'reg1')
        c.close()
    # XEP-0077 §3.1.1: <not-acceptable/>, 'wait': it works again later.
    c, el = register(srv, names[2], 'secret')
    assert_stanza_error(el, 'iq', 'not-acceptable', 'wait', sid='reg1')
    # The stream stays usable: log in with an account made earlier.
    assert_sasl_success(c.sasl_plain(names[0], 'secret'))
    c.close()
    assert not can_login(srv, names[2], 'secret')
    # Password changes are not registrations.
    c = srv.login('%s@localhost' % names[0], password='secret',
                  resource='r')
    c.send(change_xml(names[0], 'changed'))
    assert_result(c.expect_stanza('iq'), 'c1')
    c.close()
