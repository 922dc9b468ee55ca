"""xmppctl roster add and roster del (xmppctl(8)): an admin's change to a
user's roster item.  Online, the user's interested resources get the same
roster push a client's roster set or remove produces (RFC 6121 §2.1.6) and
the version moves on (XEP-0237); offline, the next roster get shows the
change.  Unknown users and items exit 5, bad arguments 2, and the commands
are refused to read-only users."""

import time

import pytest

from conftest import XMPPCTL_BIN, control_group_server
import xmpp_raw
from xmpp_raw import NS_CLIENT, q

NS_ROSTER = 'jabber:iq:roster'
EXIT_OK, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_DENIED = 0, 2, 5, 6

SERVER_OPTIONS = {}


def ok(r):
    assert r.returncode == EXIT_OK, 'exit %d\nstdout: %s\nstderr: %s' % (
        r.returncode, r.stdout, r.stderr)
    return r


def roster_get(c, ver=None):
    """The roster as {jid: item element}, and the query's ver."""
    c.send("<iq type='get' id='rg'><query xmlns='%s'%s/></iq>"
           % (NS_ROSTER, " ver='%s'" % ver if ver is not None else ''))
    res = c.expect_stanza('iq')
    assert res.get('type') == 'result' and res.get('id') == 'rg', \
        xmpp_raw.tostr(res)
    query = res.find(q(NS_ROSTER, 'query'))
    items = {}
    if query is not None:
        for it in query.findall(q(NS_ROSTER, 'item')):
            items[it.get('jid')] = it
    return items, query.get('ver') if query is not None else None


def groups(item):
    return sorted(g.text for g in item.findall(q(NS_ROSTER, 'group')))


def expect_push(c):
    """The next roster push: its single item, and the query's ver."""
    iq = c.expect_stanza('iq')
    assert iq.get('type') == 'set', xmpp_raw.tostr(iq)
    query = iq.find(q(NS_ROSTER, 'query'))
    assert query is not None, xmpp_raw.tostr(iq)
    items = query.findall(q(NS_ROSTER, 'item'))
    assert len(items) == 1, xmpp_raw.tostr(iq)
    c.send("<iq type='result' id='%s'/>" % iq.get('id'))
    return items[0], query.get('ver')


def test_add_and_del_online_pushes(server):
    server.adduser('olive@localhost', 'olive-secret')
    c = server.login('olive@localhost', 'olive-secret', resource='desk')
    try:
        _, ver0 = roster_get(c, ver='')
        ok(server.ctl('roster', 'add', 'olive@localhost',
                      'dave@example.net/phone', '--name', 'Dave D.',
                      '--group', 'Friends', '--group', 'Work'))
        item, ver1 = expect_push(c)
        # the contact is bare (RFC 6121 §2.1.1); no subscription set
        assert item.get('jid') == 'dave@example.net'
        assert item.get('name') == 'Dave D.'
        assert item.get('subscription') == 'none'
        assert item.get('ask') is None
        assert groups(item) == ['Friends', 'Work']
        assert ver1 != ver0

        # changing the name and groups keeps the item
        ok(server.ctl('roster', 'add', 'olive@localhost',
                      'dave@example.net', '--group', 'Family'))
        item, ver2 = expect_push(c)
        assert item.get('jid') == 'dave@example.net'
        assert item.get('name') is None
        assert groups(item) == ['Family']
        assert ver2 not in (ver0, ver1)

        items, _ = roster_get(c)
        assert set(items) == {'dave@example.net'}
        assert groups(items['dave@example.net']) == ['Family']

        # the listing agrees
        r = ok(server.ctl('--json', 'roster', 'show', 'olive@localhost'))
        assert '"dave@example.net"' in r.stdout and 'Family' in r.stdout

        ok(server.ctl('roster', 'del', 'olive@localhost',
                      'dave@example.net'))
        item, ver3 = expect_push(c)
        assert item.get('jid') == 'dave@example.net'
        assert item.get('subscription') == 'remove'
        assert ver3 not in (ver0, ver1, ver2)
        items, _ = roster_get(c)
        assert items == {}

        # a second del finds nothing
        r = server.ctl('roster', 'del', 'olive@localhost',
                       'dave@example.net')
        assert r.returncode == EXIT_NOT_FOUND, r.stderr
        assert 'not in the roster' in r.stderr
        c.expect_no_stanza('iq', duration=0.3)
    finally:
        c.close()


def test_del_online_unsubscribes_both_ways(server):
    """A removal with mutual subscription sends unsubscribe and
    unsubscribed, as a client's remove would (RFC 6121 §2.5.2)."""
    server.adduser('pat@localhost', 'pat-secret')
    server.adduser('quin@localhost', 'quin-secret')
    p = server.login('pat@localhost', 'pat-secret', resource='p')
    qn = server.login('quin@localhost', 'quin-secret', resource='q')
    try:
        for c in (p, qn):
            roster_get(c)
            c.presence()
        # mutual subscription, through the protocol
        p.send("<presence to='quin@localhost' type='subscribe'/>")
        qn.send("<presence to='pat@localhost' type='subscribed'/>")
        qn.send("<presence to='pat@localhost' type='subscribe'/>")
        p.send("<presence to='quin@localhost' type='subscribed'/>")
        ok(server.ctl('roster', 'show', 'pat@localhost'))
        deadline = time.monotonic() + 5
        while True:
            r = ok(server.ctl('--json', 'roster', 'show', 'pat@localhost'))
            if '"both"' in r.stdout:
                break
            assert time.monotonic() < deadline, r.stdout
            time.sleep(0.05)
        # drain what the subscription dance sent
        while p.poll_element(0.3) is not None:
            pass
        while qn.poll_element(0.3) is not None:
            pass

        ok(server.ctl('roster', 'del', 'pat@localhost', 'quin@localhost'))
        item, _ = expect_push(p)
        assert item.get('subscription') == 'remove'
        # quin's roster loses both directions: pushes with 'none'
        deadline = time.monotonic() + 5
        sub = None
        while sub != 'none':
            el = qn.next_element(max(deadline - time.monotonic(), 0.01))
            if el.tag == q(NS_CLIENT, 'iq') and el.get('type') == 'set':
                it = el.find(q(NS_ROSTER, 'query')).find(
                    q(NS_ROSTER, 'item'))
                assert it.get('jid') == 'pat@localhost'
                sub = it.get('subscription')
                qn.send("<iq type='result' id='%s'/>" % el.get('id'))
        r = ok(server.ctl('--json', 'roster', 'show', 'quin@localhost'))
        assert '"none"' in r.stdout and '"both"' not in r.stdout
    finally:
        p.close()
        qn.close()


def test_add_and_del_offline(server):
    server.adduser('rita@localhost', 'rita-secret')
    c = server.login('rita@localhost', 'rita-secret', resource='r')
    try:
        _, ver0 = roster_get(c, ver='')
    finally:
        c.close()

    ok(server.ctl('roster', 'add', 'rita@localhost', 'sam@example.org',
                  '--name', 'Sam', '--group', 'Band'))
    ok(server.ctl('roster', 'add', 'rita@localhost', 'tom@example.org'))
    c = server.login('rita@localhost', 'rita-secret', resource='r')
    try:
        # the version moved on: a full roster, not an empty result
        items, ver1 = roster_get(c, ver=ver0)
        assert ver1 is not None and ver1 != ver0
        assert set(items) == {'sam@example.org', 'tom@example.org'}
        sam = items['sam@example.org']
        assert sam.get('name') == 'Sam' and groups(sam) == ['Band']
        assert sam.get('subscription') == 'none'
        tom = items['tom@example.org']
        assert tom.get('name') is None and groups(tom) == []
    finally:
        c.close()

    ok(server.ctl('roster', 'del', 'rita@localhost', 'sam@example.org'))
    r = server.ctl('roster', 'del', 'rita@localhost', 'sam@example.org')
    assert r.returncode == EXIT_NOT_FOUND, r.stderr
    c = server.login('rita@localhost', 'rita-secret', resource='r')
    try:
        items, ver2 = roster_get(c, ver=ver1)
        assert ver2 not in (None, ver0, ver1)
        assert set(items) == {'tom@example.org'}
    finally:
        c.close()


def test_errors(server):
    for args in (('roster', 'add', 'nobody-here@localhost',
                  'x@example.org'),
                 ('roster', 'del', 'nobody-here@localhost',
                  'x@example.org')):
        r = server.ctl(*args)
        assert r.returncode == EXIT_NOT_FOUND, (args, r.stderr)
        assert 'no such user' in r.stderr
    for args in (('roster', 'add', 'alice@localhost', 'bad@@jid'),
                 ('roster', 'add', 'localhost', 'x@example.org'),
                 ('roster', 'del', 'alice@localhost/res', 'x@example.org'),
                 ('roster', 'add', 'alice@localhost', 'x@example.org',
                  '--group', 'A', '--group', 'A'),
                 ('roster', 'add', 'alice@localhost', 'x@example.org',
                  '--group', ''),
                 ('roster', 'add', 'alice@localhost', 'x@example.org',
                  '--name', 'a\x01b'),
                 ('roster', 'add', 'alice@localhost', 'x@example.org',
                  '--name', 'n' * 1024),
                 ('roster', 'add', 'alice@localhost')):
        r = server.ctl(*args)
        assert r.returncode not in (EXIT_OK, EXIT_NOT_FOUND), (
            args, r.returncode, r.stderr)
    # local usage errors exit 2 before asking the daemon
    r = server.ctl('roster', 'add', 'alice@localhost', 'x@example.org',
                   '--group', 'A', '--group', 'A')
    assert r.returncode == EXIT_USAGE, r.stderr
    r = ok(server.ctl('--json', 'roster', 'show', 'alice@localhost'))
    assert 'x@example.org' not in r.stdout


def test_read_only_uid_refused(server_factory, other_user):
    srv = control_group_server(server_factory, other_user)
    for args in (('roster', 'add', 'alice@localhost', 'x@example.org'),
                 ('roster', 'del', 'alice@localhost', 'x@example.org')):
        r = other_user.run([XMPPCTL_BIN, '-s', str(srv.sock)] + list(args))
        assert r.returncode == EXIT_DENIED, (args, r.returncode, r.stderr)
