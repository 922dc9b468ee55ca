"""Rosters (RFC 6121 §2): get, add, update, remove, pushes to interested
resources only, the error cases of §2.3.3 and §2.5.3, JID preparation of
items, the roster-size limit, roster versioning (RFC 6121 §2.6,
XEP-0237), and the removal of a deleted account (xmppctl deluser) from
other users' rosters."""

import re

import pytest

from im_helpers import (NS_ROSTER, NS_ROSTERVER, fresh_users, groups_of,
                        is_presence, is_roster_push, login_features,
                        subscribe_both)
from im_helpers import im  # noqa: F401 (the fixture)
from xmpp_raw import assert_stanza_error, q, tostr

# The roster-size limit (limits { roster-size N }) reached: RFC 6121 names
# no condition for it, so this is ours (RFC 6120 §8.3.3.10: the server
# does not allow the action; retrying will not help).
ROSTER_FULL = ('not-allowed', 'cancel')
# A roster item whose 'jid' is not a valid JID: RFC 6121 §2.3.3 does not
# list it; the item violates the syntax of its namespace (RFC 6120
# §8.3.3.1), like the other malformed roster sets of §2.3.3.
ROSTER_BAD_JID = ('bad-request', 'modify')
ROSTER_SIZE = 5
# Longer than any sane server-configured limit for 'name' and <group/>
# (RFC 6121 §2.3.3), well below stanza-size.
TOO_LONG = 'x' * 10000

SERVER_OPTIONS = {'limits': {'roster-size': ROSTER_SIZE}}


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    server.assert_serves()


def query_of(el):
    query = el.find(q(NS_ROSTER, 'query'))
    assert query is not None, 'no roster <query/>: %s' % tostr(el)
    return query


def items_of(el):
    return {i.get('jid'): i
            for i in query_of(el).findall(q(NS_ROSTER, 'item'))}


def assert_empty_result(el, client):
    assert el.get('type') == 'result', tostr(el)
    assert len(el) == 0, 'roster set result has a payload: %s' % tostr(el)
    assert el.get('to') in (None, client.full), tostr(el)


# --- get / add / update / remove ---------------------------------------------

def test_roster_get_empty(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    el = c.roster_get()
    assert el.get('from') in (None, c.bare), tostr(el)
    assert list(query_of(el)) == [], tostr(el)


def test_add_item_result_and_pushes_to_interested_resources(server, im):
    """RFC 6121 §2.3.2: result to the sender, a push to every interested
    resource (requested the roster, available or not), none to a resource
    that never requested it (§2.2)."""
    [a] = fresh_users(server, 1)
    r1 = im(a, 'r1', roster=True)
    r2 = im(a, 'r2', roster=True, presence=False)
    r3 = im(a, 'r3', roster=False)
    el = r1.roster_set('nurse@example.com', 'Nurse', ['Servants'])
    assert_empty_result(el, r1)
    for c in (r1, r2):
        item = c.expect_push('nurse@example.com')
        assert item.get('name') == 'Nurse', tostr(item)
        assert item.get('subscription') == 'none', tostr(item)
        assert item.get('ask') is None, tostr(item)
        assert groups_of(item) == ['Servants'], tostr(item)
    r3.no_push()
    item = items_of(r2.roster_get())['nurse@example.com']
    assert item.get('name') == 'Nurse' and groups_of(item) == ['Servants']
    assert item.get('subscription') == 'none'


def test_update_item_replaces_name_and_groups(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, roster=True)
    c.roster_set('nurse@example.com', 'Nurse', ['Servants'])
    c.expect_push('nurse@example.com')
    el = c.roster_set('nurse@example.com', 'Nanny \u00e9\u00e8',
                      ['Friends', 'Family \u2603'])
    assert_empty_result(el, c)
    item = c.expect_push('nurse@example.com')
    assert item.get('name') == 'Nanny \u00e9\u00e8', tostr(item)
    assert groups_of(item) == ['Family \u2603', 'Friends'], tostr(item)
    # §2.4: the set carries the whole item; no name and no group now
    c.roster_set('nurse@example.com')
    item = c.expect_push('nurse@example.com')
    assert item.get('name') in (None, ''), tostr(item)
    assert groups_of(item) == [], tostr(item)
    item = c.roster()['nurse@example.com']
    assert item.get('name') in (None, '') and groups_of(item) == []


def test_remove_item(server, im):
    [a] = fresh_users(server, 1)
    r1 = im(a, 'r1', roster=True)
    r2 = im(a, 'r2', roster=True)
    r1.roster_set('nurse@example.com', 'Nurse')
    r1.expect_push('nurse@example.com')
    r2.expect_push('nurse@example.com')
    el = r1.roster_set('nurse@example.com', subscription='remove')
    assert_empty_result(el, r1)
    for c in (r1, r2):
        item = c.expect_push('nurse@example.com')
        assert item.get('subscription') == 'remove', tostr(item)
    assert 'nurse@example.com' not in r2.roster()


def test_remove_unknown_item(server, im):
    """RFC 6121 §2.5.3: <item-not-found/>."""
    [a] = fresh_users(server, 1)
    c = im(a, roster=True)
    el = c.roster_set('nobody@example.com', subscription='remove')
    assert_stanza_error(el, 'iq', 'item-not-found', etype='cancel')
    c.no_push()


def test_roster_persists_across_sessions(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, 'first', roster=True)
    c.roster_set('nurse@example.com', 'Nurse', ['Servants', 'Staff'])
    c.expect_push('nurse@example.com')
    c.close_stream()
    c.raw.close()
    c2 = im(a, 'second', roster=True)
    item = c2.roster()['nurse@example.com']
    assert item.get('name') == 'Nurse'
    assert groups_of(item) == ['Servants', 'Staff']
    assert item.get('subscription') == 'none'


def test_roster_set_to_own_bare_jid(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, roster=True)
    el = c.iq('set', "<query xmlns='%s'><item jid='nurse@example.com'/>"
              "</query>" % NS_ROSTER, to=c.bare)
    assert el.get('type') == 'result', tostr(el)
    c.expect_push('nurse@example.com')


# --- what the server ignores or prepares -------------------------------------

def test_subscription_ask_and_approved_in_set_ignored(server, im):
    """RFC 6121 §2.1.2: a client cannot set 'subscription' (other than
    remove), 'ask' or 'approved'; the server ignores them."""
    [a] = fresh_users(server, 1)
    c = im(a, roster=True)
    el = c.roster_set('nurse@example.com', 'Nurse', subscription='both',
                      extra_attrs=" ask='subscribe' approved='true'")
    assert el.get('type') == 'result', tostr(el)
    item = c.expect_push('nurse@example.com')
    assert item.get('subscription') == 'none', tostr(item)
    assert item.get('ask') is None, tostr(item)
    assert item.get('approved') in (None, 'false'), tostr(item)


def test_item_jid_is_prepared(server, im):
    """The item's JID is stored in canonical form (RFC 7622 §3.2, §3.3:
    localpart and domainpart are case-folded)."""
    [a] = fresh_users(server, 1)
    c = im(a, roster=True)
    el = c.roster_set('Nurse@Example.COM', 'Nurse')
    assert el.get('type') == 'result', tostr(el)
    item = c.expect_push('nurse@example.com')
    assert item.get('name') == 'Nurse'
    assert list(c.roster()) == ['nurse@example.com']
    # the same contact written differently updates the one item
    c.roster_set('NURSE@example.com', 'Nanny')
    c.expect_push('nurse@example.com')
    roster = c.roster()
    assert list(roster) == ['nurse@example.com']
    assert roster['nurse@example.com'].get('name') == 'Nanny'


# --- errors ------------------------------------------------------------------

SET_ERRORS = {
    # RFC 6121 §2.3.3: <bad-request/>
    'two-items': ("<item jid='a@example.com'/><item jid='b@example.com'/>",
                  'bad-request', 'modify'),
    'duplicate-groups': ("<item jid='a@example.com'><group>G</group>"
                         "<group>G</group></item>", 'bad-request', 'modify'),
    # RFC 6121 §2.3.3: <not-acceptable/>
    'empty-group': ("<item jid='a@example.com'><group/></item>",
                    'not-acceptable', 'modify'),
    'name-too-long': ("<item jid='a@example.com' name='%s'/>" % TOO_LONG,
                      'not-acceptable', 'modify'),
    'group-too-long': ("<item jid='a@example.com'><group>%s</group></item>"
                       % TOO_LONG, 'not-acceptable', 'modify'),
    # RFC 6121 §2.1.5: exactly one <item/>, which has a 'jid'
    'no-item': ('', 'bad-request', 'modify'),
    'no-jid': ("<item name='Nobody'/>", 'bad-request', 'modify'),
    # not a JID
    'jid-empty-localpart': ("<item jid='@example.com'/>",) + ROSTER_BAD_JID,
    'jid-two-at': ("<item jid='a@b@example.com'/>",) + ROSTER_BAD_JID,
    'jid-empty-domain': ("<item jid='user@'/>",) + ROSTER_BAD_JID,
    'jid-space': ("<item jid='two words@example.com'/>",) + ROSTER_BAD_JID,
    'jid-empty': ("<item jid=''/>",) + ROSTER_BAD_JID,
}


@pytest.mark.parametrize('case', sorted(SET_ERRORS))
def test_roster_set_errors(server, im, case):
    payload, condition, etype = SET_ERRORS[case]
    [a] = fresh_users(server, 1)
    c = im(a, roster=True)
    c.iq_error('set', "<query xmlns='%s'>%s</query>" % (NS_ROSTER, payload),
               condition, etype)
    c.no_push(duration=0.2)
    assert c.roster() == {}, 'the failed set changed the roster'


def test_roster_set_for_another_user_forbidden(server, im):
    """RFC 6121 §2.3.3: only the account itself may change its roster."""
    a, b = fresh_users(server, 2)
    ca = im(a, roster=True)
    cb = im(b, roster=True)
    ca.iq_error('set', "<query xmlns='%s'><item jid='nurse@example.com'/>"
                "</query>" % NS_ROSTER, 'forbidden', 'auth', to=b)
    cb.no_push(duration=0.2)
    assert cb.roster() == {}


# --- size limit --------------------------------------------------------------

def test_roster_size_limit(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, roster=True)
    for i in range(ROSTER_SIZE):
        jid = 'contact%d@example.com' % i
        assert c.roster_set(jid).get('type') == 'result'
        c.expect_push(jid)
    el = c.roster_set('onetoomany@example.com', 'Over')
    assert_stanza_error(el, 'iq', ROSTER_FULL[0], etype=ROSTER_FULL[1])
    c.no_push(duration=0.2)
    # The log line names the connection (HACKING.md, limits).
    assert re.search(r'c2s \d+ [0-9.]+: %s/\S+: limits \{ roster-size %d \} '
                     r'reached' % (re.escape(a), ROSTER_SIZE),
                     server.stderr_text()), server.stderr_tail()
    assert sorted(c.roster()) == sorted('contact%d@example.com' % i
                                        for i in range(ROSTER_SIZE))
    # changing an existing item is not adding one
    assert c.roster_set('contact0@example.com', 'Renamed').get(
        'type') == 'result'
    assert c.expect_push('contact0@example.com').get('name') == 'Renamed'
    # removing one makes room again
    c.roster_set('contact1@example.com', subscription='remove')
    c.expect_push('contact1@example.com')
    assert c.roster_set('onetoomany@example.com').get('type') == 'result'
    c.expect_push('onetoomany@example.com')


# --- versioning (RFC 6121 §2.6, XEP-0237) ------------------------------------

def test_rosterver_stream_feature(server):
    [a] = fresh_users(server, 1)
    c, features = login_features(server, a)
    try:
        assert features.find(q(NS_ROSTERVER, 'ver')) is not None, (
            'no <ver xmlns=%r/> after authentication: %s'
            % (NS_ROSTERVER, tostr(features)))
    finally:
        c.close()


def test_rosterver_flow(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, 'r1', presence=False)
    other = im(a, 'r2', presence=False)
    first = query_of(c.roster_get(ver=''))
    v0 = first.get('ver')
    assert v0, 'roster result without a ver: %s' % tostr(first)
    other.roster_get()

    c.roster_set('nurse@example.com', 'Nurse')
    push = c.wait(is_roster_push('nurse@example.com'))
    c.answer(push)
    v1 = query_of(push).get('ver')
    assert v1 and v1 != v0, 'push ver %r after %r' % (v1, v0)
    other.expect_push('nurse@example.com')

    # up to date: an empty result, changes will come as pushes
    el = c.roster_get(ver=v1)
    assert len(el) == 0, 'expected an empty result: %s' % tostr(el)

    # an old or unknown version: the whole roster with the current ver
    for stale in (v0, 'no-such-version'):
        query = query_of(c.roster_get(ver=stale))
        assert query.get('ver') == v1, tostr(query)
        assert [i.get('jid') for i in query] == ['nurse@example.com']

    # after the empty result, another resource's change arrives as a push
    other.roster_set('romeo@example.net', 'Romeo')
    push = c.wait(is_roster_push('romeo@example.net'))
    c.answer(push)
    v2 = query_of(push).get('ver')
    assert v2 and v2 not in (v0, v1)
    other.expect_push('romeo@example.net')

    # removals carry a version too
    other.roster_set('romeo@example.net', subscription='remove')
    push = c.wait(is_roster_push('romeo@example.net'))
    v3 = query_of(push).get('ver')
    assert v3 and v3 not in (v0, v1, v2)
    assert len(c.roster_get(ver=v3)) == 0


def test_rosterver_survives_new_session(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, 'r1', presence=False)
    c.roster_get(ver='')
    c.roster_set('nurse@example.com', 'Nurse')
    ver = query_of(c.wait(is_roster_push('nurse@example.com'))).get('ver')
    c.close_stream()
    c.raw.close()
    c2 = im(a, 'r2', presence=False)
    el = c2.roster_get(ver=ver)
    assert len(el) == 0, 'expected an empty result: %s' % tostr(el)


# --- deleted accounts --------------------------------------------------------

def test_deluser_removes_contact_from_rosters(server, im):
    """xmppctl deluser: the account disappears from every roster that held
    it, with a push subscription='remove' (and its sessions end, so its
    contacts see it go unavailable)."""
    alice, carol = fresh_users(server, 2)
    ca = im(alice, roster=True)
    cc = im(carol, roster=True)
    subscribe_both(ca, cc)
    r = server.ctl('deluser', carol)
    assert r.returncode == 0, r.stderr
    item = ca.expect_push(carol)
    assert item.get('subscription') == 'remove', tostr(item)
    ca.wait(is_presence(frm=cc.full, ptype='unavailable'))
    assert carol not in ca.roster()
    # the name can be taken again and starts with an empty roster
    server.adduser(carol, 'again')
    cc2 = im(carol, roster=True, presence=False, password='again')
    assert cc2.roster() == {}
