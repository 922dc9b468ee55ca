"""xmppctl pep show and pep delete, and the PEP lines of user show
(xmppctl(8)), against a running daemon.  The nodes and items are written
into the database with sqlite3 (the tables of store_sqlite.c's migration
6) right after the account is created, before anything reads them: the
admin side is tested without the protocol module.  Checked: every field
of a node and its items in publish order, in text and JSON; one node; an
unknown node, account or a bad JID; a delete removes the node and its
items and nothing else; deluser removes every PEP row; user show counts
nodes, items and bytes; a read-only uid may show but not delete."""

import json
import sqlite3
import time

import pytest

from conftest import XMPPCTL_BIN, control_group_server

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
EXIT_NOT_FOUND, EXIT_DENIED = 5, 6

AVATAR = 'urn:xmpp:avatar:metadata'
DEVICES = 'eu.siacs.conversations.axolotl.devicelist'
PRIVATE = 'private notes'      # a space: checks the field encoding

# Stamps (ms) and creation times (s) of the nodes written below.
T0 = 1735689600                 # 2025-01-01T00:00:00Z


def ok(r):
    assert r.returncode == EXIT_OK, 'exit %d\nstdout: %s\nstderr: %s' % (
        r.returncode, r.stdout, r.stderr)
    return r


def ctl_json(server, *args):
    return json.loads(ok(server.ctl('--json', *args)).stdout)


def db(server):
    con = sqlite3.connect(str(server.db), timeout=10)
    con.execute('PRAGMA foreign_keys=ON')
    return con


def add_node(con, uid, node, access=0, groups=None, max_items=1, persist=1,
             send_last=2, notify_retract=1, notify_delete=0, title=None,
             created=T0, items=()):
    """A pep_node row and its pep_item rows (id, publisher, stamp_ms,
    payload), in the order given: publish order."""
    cur = con.execute(
        'INSERT INTO pep_node (user_id, node, access, groups, max_items,'
        ' persist, send_last, notify_retract, notify_delete, title, items,'
        ' bytes, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)',
        (uid, node, access, '\x1f'.join(groups) if groups else None,
         max_items, persist, send_last, notify_retract, notify_delete, title,
         len(items), sum(len(p.encode()) for _, _, _, p in items), created))
    nid = cur.lastrowid
    for item, publisher, stamp, payload in items:
        con.execute(
            'INSERT INTO pep_item (node_id, item, publisher, stamp, size,'
            ' payload) VALUES (?,?,?,?,?,?)',
            (nid, item, publisher, stamp, len(payload.encode()), payload))
    return nid


META = "<metadata xmlns='urn:xmpp:avatar:metadata'><info id='abc'/></metadata>"
LIST1 = "<list xmlns='eu.siacs.conversations.axolotl'><device id='1'/></list>"
LIST2 = ("<list xmlns='eu.siacs.conversations.axolotl'><device id='1'/>"
         "<device id='2'/></list>")


def make_account(server, jid):
    """An account with three nodes: an avatar with one item, a device list
    node of max_items "max" whose items were published "zz" then "aa"
    (publish order is not id order), and a roster-access node with
    groups, a title, no items and every flag the other way round."""
    server.adduser(jid, 'pep-secret')
    user, host = jid.split('@')
    con = db(server)
    with con:
        uid = con.execute('SELECT id FROM users WHERE user = ? AND host = ?',
                          (user, host)).fetchone()[0]
        add_node(con, uid, AVATAR, items=[
            ('abc', jid, T0 * 1000 + 250, META)])
        add_node(con, uid, DEVICES, access=1, max_items=0, send_last=1,
                 created=T0 + 60, items=[
                     ('zz', jid, (T0 + 61) * 1000, LIST1),
                     ('aa', '', (T0 + 62) * 1000 + 5, LIST2)])
        add_node(con, uid, PRIVATE, access=2, groups=['Friends', 'Family'],
                 max_items=5, persist=0, send_last=0, notify_retract=0,
                 notify_delete=1, title='Notes, mine', created=T0 + 120)
    con.close()
    return uid


def node_ids(server, uid):
    con = db(server)
    try:
        return [r[0] for r in con.execute(
            'SELECT node FROM pep_node WHERE user_id = ? ORDER BY node',
            (uid,))]
    finally:
        con.close()


def item_rows(server, uid):
    con = db(server)
    try:
        return con.execute(
            'SELECT count(*) FROM pep_item WHERE node_id IN'
            ' (SELECT id FROM pep_node WHERE user_id = ?)',
            (uid,)).fetchone()[0]
    finally:
        con.close()


WANT = [
    {'node': AVATAR, 'access': 'presence', 'groups': [], 'max_items': 1,
     'persist': True, 'send_last': 'on_sub_and_presence',
     'notify_retract': True, 'notify_delete': False, 'title': None,
     'item_count': 1, 'bytes': len(META), 'created': '2025-01-01T00:00:00Z',
     'items': [{'id': 'abc', 'size': len(META),
                'publisher': 'pia@localhost',
                'published': '2025-01-01T00:00:00Z'}]},
    {'node': DEVICES, 'access': 'open', 'groups': [], 'max_items': 'max',
     'persist': True, 'send_last': 'on_sub', 'notify_retract': True,
     'notify_delete': False, 'title': None, 'item_count': 2,
     'bytes': len(LIST1) + len(LIST2), 'created': '2025-01-01T00:01:00Z',
     'items': [{'id': 'zz', 'size': len(LIST1),
                'publisher': 'pia@localhost',
                'published': '2025-01-01T00:01:01Z'},
               {'id': 'aa', 'size': len(LIST2), 'publisher': '',
                'published': '2025-01-01T00:01:02Z'}]},
    {'node': PRIVATE, 'access': 'roster', 'groups': ['Friends', 'Family'],
     'max_items': 5, 'persist': False, 'send_last': 'never',
     'notify_retract': False, 'notify_delete': True, 'title': 'Notes, mine',
     'item_count': 0, 'bytes': 0, 'created': '2025-01-01T00:02:00Z',
     'items': []},
]


# By node name, as listed.
WANT.sort(key=lambda n: n['node'])

TEXT = {
    AVATAR: (
        AVATAR + '\n'
        '  access          presence\n'
        '  max-items       1\n'
        '  persist         yes\n'
        '  send-last       on_sub_and_presence\n'
        '  notify-retract  yes\n'
        '  notify-delete   no\n'
        '  items           1\n'
        '  bytes           %d\n'
        '  created         2025-01-01T00:00:00Z\n'
        '  item  abc  %d bytes  pia@localhost  2025-01-01T00:00:00Z\n'
        % (len(META), len(META))),
    DEVICES: (
        DEVICES + '\n'
        '  access          open\n'
        '  max-items       max\n'
        '  persist         yes\n'
        '  send-last       on_sub\n'
        '  notify-retract  yes\n'
        '  notify-delete   no\n'
        '  items           2\n'
        '  bytes           %d\n'
        '  created         2025-01-01T00:01:00Z\n'
        '  item  zz  %d bytes  pia@localhost  2025-01-01T00:01:01Z\n'
        '  item  aa  %d bytes  -  2025-01-01T00:01:02Z\n'
        % (len(LIST1) + len(LIST2), len(LIST1), len(LIST2))),
    PRIVATE: (
        PRIVATE + '\n'
        '  access          roster (groups: Friends, Family)\n'
        '  max-items       5\n'
        '  persist         no\n'
        '  send-last       never\n'
        '  notify-retract  no\n'
        '  notify-delete   yes\n'
        '  title           Notes, mine\n'
        '  items           0\n'
        '  bytes           0\n'
        '  created         2025-01-01T00:02:00Z\n'),
}


def test_pep_show_json_and_text(server):
    make_account(server, 'pia@localhost')
    assert ctl_json(server, 'pep', 'show', 'pia@localhost') == WANT
    # one node, by its name (with a space in it)
    for want in WANT:
        assert ctl_json(server, 'pep', 'show', 'pia@localhost',
                        want['node']) == [want]
    text = ok(server.ctl('pep', 'show', 'pia@localhost')).stdout
    assert text == '\n'.join(TEXT[n] for n in sorted(TEXT)), text
    for node in TEXT:
        one = ok(server.ctl('pep', 'show', 'pia@localhost', node)).stdout
        assert one == TEXT[node], one
    # abbreviations, word by word
    assert json.loads(ok(server.ctl('--json', 'pe', 'sh', 'pia@localhost'))
                      .stdout) == WANT


def test_pep_show_errors(server):
    server.adduser('nopep@localhost', 'nopep-secret')
    # an account without nodes: nothing, or []
    assert ok(server.ctl('pep', 'show', 'nopep@localhost')).stdout == ''
    assert ctl_json(server, 'pep', 'show', 'nopep@localhost') == []
    r = server.ctl('pep', 'show', 'nopep@localhost', AVATAR)
    assert r.returncode == EXIT_NOT_FOUND, (r.returncode, r.stderr)
    assert 'no such node' in r.stderr
    r = server.ctl('pep', 'show', 'nobody-here@localhost')
    assert r.returncode == EXIT_NOT_FOUND, (r.returncode, r.stderr)
    assert 'no such user' in r.stderr
    for bad in ('localhost', 'a@b@c', 'nopep@localhost/res'):
        r = server.ctl('pep', 'show', bad)
        assert r.returncode == EXIT_ERROR, (bad, r.returncode, r.stderr)
        assert 'JID' in r.stderr or 'user@host' in r.stderr, r.stderr
    r = server.ctl('pep', 'show', 'nopep@localhost', 'x' * 1024)
    assert r.returncode == EXIT_ERROR and 'NODE' in r.stderr, r.stderr
    r = server.ctl('pep', 'show')
    assert r.returncode == EXIT_USAGE, r.stderr
    r = server.ctl('pep', 'delete', 'nopep@localhost')
    assert r.returncode == EXIT_USAGE, r.stderr


def test_pep_delete(server):
    uid = make_account(server, 'pia2@localhost')
    assert item_rows(server, uid) == 3
    r = ok(server.ctl('pep', 'delete', 'pia2@localhost', DEVICES))
    assert r.stdout == ''
    r = server.ctl('pep', 'show', 'pia2@localhost', DEVICES)
    assert r.returncode == EXIT_NOT_FOUND and 'no such node' in r.stderr, (
        r.returncode, r.stderr)
    assert node_ids(server, uid) == [PRIVATE, AVATAR]
    assert item_rows(server, uid) == 1          # the avatar's
    shown = ctl_json(server, 'pep', 'show', 'pia2@localhost')
    assert [n['node'] for n in shown] == [PRIVATE, AVATAR]
    assert [i['id'] for i in shown[1]['items']] == ['abc']
    # again: gone; an unknown account says so
    r = server.ctl('pep', 'delete', 'pia2@localhost', DEVICES)
    assert r.returncode == EXIT_NOT_FOUND and 'no such node' in r.stderr, (
        r.returncode, r.stderr)
    r = server.ctl('pep', 'delete', 'nobody-here@localhost', DEVICES)
    assert r.returncode == EXIT_NOT_FOUND and 'no such user' in r.stderr, (
        r.returncode, r.stderr)
    r = server.ctl('pep', 'delete', 'localhost', DEVICES)
    assert r.returncode == EXIT_ERROR, (r.returncode, r.stderr)
    ok(server.ctl('pep', 'delete', 'pia2@localhost', PRIVATE))
    assert node_ids(server, uid) == [AVATAR]
    # the daemon logs the change with the admin's uid
    deadline = time.monotonic() + 5
    while 'pep-delete pia2@localhost: node "%s": ok' % PRIVATE \
            not in server.stderr_text():
        assert time.monotonic() < deadline, server.stderr_tail()
        time.sleep(0.05)


def test_user_show_counts_pep(server):
    server.adduser('nopep2@localhost', 'nopep-secret')
    info = ctl_json(server, 'user', 'show', 'nopep2@localhost')
    assert (info['pep-nodes'], info['pep-items'], info['pep-bytes']) == (
        0, 0, 0)
    make_account(server, 'pia3@localhost')
    info = ctl_json(server, 'user', 'show', 'pia3@localhost')
    assert info['pep-nodes'] == 3
    assert info['pep-items'] == 3
    assert info['pep-bytes'] == len(META) + len(LIST1) + len(LIST2)
    text = ok(server.ctl('user', 'show', 'pia3@localhost')).stdout
    assert 'pep-nodes         3\n' in text, text
    assert 'pep-bytes         %d\n' % info['pep-bytes'] in text, text
    ok(server.ctl('pep', 'delete', 'pia3@localhost', DEVICES))
    info = ctl_json(server, 'user', 'show', 'pia3@localhost')
    assert (info['pep-nodes'], info['pep-items'], info['pep-bytes']) == (
        2, 1, len(META))


def test_deluser_removes_pep_rows(server):
    uid = make_account(server, 'pia4@localhost')
    assert len(node_ids(server, uid)) == 3
    ok(server.ctl('deluser', 'pia4@localhost'))
    con = db(server)
    try:
        assert con.execute('SELECT count(*) FROM pep_node WHERE user_id = ?',
                           (uid,)).fetchone()[0] == 0
        assert con.execute('SELECT count(*) FROM pep_item WHERE node_id NOT'
                           ' IN (SELECT id FROM pep_node)').fetchone()[0] == 0
    finally:
        con.close()
    r = server.ctl('pep', 'show', 'pia4@localhost')
    assert r.returncode == EXIT_NOT_FOUND, (r.returncode, r.stderr)


def test_read_only_uid_shows_but_cannot_delete(server_factory, other_user):
    srv = control_group_server(server_factory, other_user)
    uid = make_account(srv, 'pia5@localhost')

    def as_nobody(*args):
        return other_user.run([XMPPCTL_BIN, '-s', str(srv.sock)] +
                              list(args))

    r = as_nobody('--json', 'pep', 'show', 'pia5@localhost')
    assert r.returncode == EXIT_OK, (r.returncode, r.stderr)
    assert [n['node'] for n in json.loads(r.stdout)] == [
        DEVICES, PRIVATE, AVATAR]
    r = as_nobody('pep', 'delete', 'pia5@localhost', AVATAR)
    assert r.returncode == EXIT_DENIED, (r.returncode, r.stderr)
    assert node_ids(srv, uid) == [DEVICES, PRIVATE, AVATAR]
