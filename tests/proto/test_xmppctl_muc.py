"""xmppctl rooms and room show|create|destroy|affiliate (xmppctl(8)),
against a running daemon with its conference service, with raw XML
clients in the rooms: the listing (occupants, flags, messages in the
last minute counted from groupchat messages the room accepted), a room
shown with its settings, affiliations and occupants (real JIDs), in
text and JSON; a room created by the administrator (unlocked, owned by
nobody or by --owner, its flags) that a client joins at once; an
affiliation set by the administrator reaching the occupant (301 when
banned) and the room's storage (surviving a restart); a destroy that
every occupant sees with the reason; the errors (unknown room, bad JID,
no MUC service, unknown affiliation, the only owner) with their exit
codes; and a read-only uid that may list and show but not change."""

import json
import time

from conftest import XMPPCTL_BIN, control_group_server
from im_helpers import fresh_users, im  # noqa: F401
from test_muc import (NS_MUC_USER, SERVICE, body, codes, create, is_msg,
                      is_pres, item, join, join_error, new_room, say)
from xmpp_raw import q

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
EXIT_EXISTS, EXIT_NOT_FOUND, EXIT_DENIED = 4, 5, 6


def ok(r):
    assert r.returncode == EXIT_OK, 'exit %d\nstdout: %s\nstderr: %s' % (
        r.returncode, r.stdout, r.stderr)
    return r


def ctl_json(server, *args):
    return json.loads(ok(server.ctl('--json', *args)).stdout)


def rooms_by_jid(server):
    return {r['jid']: r for r in ctl_json(server, 'rooms')}


def test_rooms_listing_and_rate(server, im):
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    room = new_room()
    create(ca, room, 'alice')
    join(cb, room, 'bob')
    for i in range(3):
        say(ca, room, 'hello %d' % i)
        ca.wait(is_msg(room + '/alice'))
    say(cb, room, 'hi')
    ca.wait(is_msg(room + '/bob'))
    r = rooms_by_jid(server)[room]
    assert r == {'jid': room, 'name': '', 'occupants': 2, 'sessions': 2,
                 'persistent': False, 'public': True,
                 'members_only': False, 'locked': False,
                 'messages_per_min': 4}
    # a message the room refuses (a non-occupant's) does not count
    c3 = im(fresh_users(server, 1)[0])
    say(c3, room, 'intruder')
    c3.wait(lambda x: x.get('type') == 'error')
    assert rooms_by_jid(server)[room]['messages_per_min'] == 4
    # text: a header and a line per room
    out = ok(server.ctl('rooms')).stdout.splitlines()
    assert out[0].split('\t') == [
        'jid', 'name', 'occupants', 'sessions', 'persistent', 'public',
        'members_only', 'locked', 'messages_per_min']
    line = [l for l in out if l.startswith(room + '\t')]
    assert line == ['%s\t\t2\t2\tno\tyes\tno\tno\t4' % room]
    # the room goes with its last occupant, and from the listing
    ca.close_stream()
    cb.close_stream()
    for _ in range(50):
        if room not in rooms_by_jid(server):
            break
        time.sleep(0.05)
    assert room not in rooms_by_jid(server)


def test_room_show(server, im):
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    room = new_room()
    create(ca, room, 'alice', {'muc#roomconfig_roomname': 'Tea room',
                               'muc#roomconfig_moderatedroom': '1'})
    cb2 = im(b, resource='second')
    join(cb, room, 'bob')
    join(cb2, room, 'bob')
    ca.send("<message to='%s' type='groupchat'><subject>Oolong</subject>"
            "</message>" % room)
    cb.wait(lambda x: x.find(q('jabber:client', 'subject')) is not None
            and x.get('from') == room + '/alice')
    ok(server.ctl('room', 'affiliate', room, 'carol@example.net',
                  'member'))
    d = ctl_json(server, 'room', 'show', room)
    assert d['jid'] == room and d['name'] == 'Tea room'
    assert d['subject'] == 'Oolong' and d['subject-by'] == 'alice'
    assert d['moderated'] is True and d['messages-per-min'] == 0
    assert d['persistent'] is False and d['locked'] is False
    assert d['max-users'] is None and d['history-length'] == 20
    assert d['whois'] == 'moderators' and d['allow-pm'] == 'anyone'
    assert d['affiliations'] == [
        {'jid': a, 'affiliation': 'owner'},
        {'jid': 'carol@example.net', 'affiliation': 'member'}]
    assert sorted(d['occupants'], key=lambda o: o['nick']) == [
        {'nick': 'alice', 'role': 'moderator', 'affiliation': 'owner',
         'jid': a, 'sessions': 1},
        {'nick': 'bob', 'role': 'visitor', 'affiliation': 'none',
         'jid': b, 'sessions': 2}]
    text = ok(server.ctl('room', 'show', room)).stdout
    assert any(l.split() == ['name', 'Tea', 'room']
               for l in text.splitlines())
    assert any(l.split() == ['max-users', '-'] for l in text.splitlines())
    assert '  alice  moderator  owner  %s  1' % a in text
    assert '  bob  visitor  none  %s  2' % b in text
    assert '  owner    %s' % a in text


def test_room_create_destroy(server, im):
    a, b = fresh_users(server, 2)
    room = new_room()
    ok(server.ctl('room', 'create', room, '--persistent', '--members-only',
                  '--name', 'Board', '--owner', a))
    r = rooms_by_jid(server)[room]
    assert (r['occupants'], r['persistent'], r['public'],
            r['members_only'], r['locked'], r['name']) == (
        0, True, False, True, False, 'Board')
    r = server.ctl('room', 'create', room)
    assert r.returncode == EXIT_EXISTS and 'exists' in r.stderr
    # the owner joins at once: no 201, no lock
    ca = im(a)
    _, own = join(ca, room, 'alice', subject=False)
    assert 201 not in codes(own)
    assert item(own).get('affiliation') == 'owner'
    # members-only: bob is refused until made a member
    cb = im(b)
    join_error(cb, room, 'bob', 'registration-required')
    ok(server.ctl('room', 'affiliate', room, b, 'member'))
    join(cb, room, 'bob', subject=False)
    # destroy: everyone gets the unavailable presence with <destroy/>
    r = ok(server.ctl('room', 'destroy', room, '--reason', 'closing up'))
    assert r.stdout == '2 occupants told\n'
    for c, nick in ((ca, 'alice'), (cb, 'bob')):
        el = c.wait(is_pres(room + '/' + nick, 'unavailable'))
        d = el.find(q(NS_MUC_USER, 'x')).find(q(NS_MUC_USER, 'destroy'))
        assert d is not None
        assert d.find(q(NS_MUC_USER, 'reason')).text == 'closing up'
    assert room not in rooms_by_jid(server)
    r = server.ctl('room', 'show', room)
    assert r.returncode == EXIT_NOT_FOUND
    assert 'no such room %s' % room in r.stderr


def test_temporary_room_and_ban(server, im):
    a, b = fresh_users(server, 2)
    room = new_room()
    ok(server.ctl('room', 'create', room, '--public'))
    r = rooms_by_jid(server)[room]
    assert (r['persistent'], r['public'], r['members_only']) == (
        False, True, False)
    cb = im(b)
    _, own = join(cb, room, 'bob', subject=False)
    assert item(own).get('affiliation') == 'none'    # owned by nobody
    assert ctl_json(server, 'room', 'show', room)['affiliations'] == []
    ok(server.ctl('room', 'affiliate', room, b, 'outcast'))
    el = cb.wait(is_pres(room + '/bob', 'unavailable'))
    assert 301 in codes(el)
    # the temporary room went with its last occupant
    assert room not in rooms_by_jid(server)


def test_affiliation_persists_across_restart(server_factory, im):
    srv = server_factory()
    room = 'keep@' + SERVICE
    ok(srv.ctl('room', 'create', room, '--persistent', '--owner',
               'alice@localhost'))
    ok(srv.ctl('room', 'affiliate', room, 'bob@localhost', 'admin'))
    ok(srv.ctl('room', 'affiliate', room, 'eve@localhost', 'outcast'))
    srv.stop()
    srv.start(create_users=False)
    for _ in range(50):
        r = srv.ctl('--json', 'room', 'show', room)
        if r.returncode == EXIT_OK:
            break
        time.sleep(0.05)
    d = json.loads(ok(r).stdout)
    assert d['persistent'] is True
    assert d['affiliations'] == [
        {'jid': 'alice@localhost', 'affiliation': 'owner'},
        {'jid': 'bob@localhost', 'affiliation': 'admin'},
        {'jid': 'eve@localhost', 'affiliation': 'outcast'}]
    # the only owner stays one
    r = srv.ctl('room', 'affiliate', room, 'alice@localhost', 'none')
    assert r.returncode == EXIT_ERROR and 'only owner' in r.stderr
    ok(srv.ctl('room', 'destroy', room))
    srv.stop()
    srv.start(create_users=False)
    assert srv.ctl('room', 'show', room).returncode == EXIT_NOT_FOUND


def test_errors(server):
    room = new_room()
    r = server.ctl('room', 'show', room)
    assert r.returncode == EXIT_NOT_FOUND and 'no such room' in r.stderr
    r = server.ctl('room', 'show', 'room@conference.nowhere.example')
    assert r.returncode == EXIT_NOT_FOUND
    assert 'no MUC service at conference.nowhere.example' in r.stderr
    r = server.ctl('room', 'show', SERVICE)
    assert r.returncode == EXIT_ERROR and 'room@service' in r.stderr
    r = server.ctl('room', 'destroy', room + '/nick')
    assert r.returncode == EXIT_ERROR and 'room@service' in r.stderr
    r = server.ctl('room', 'create', 'a@b@c')
    assert r.returncode == EXIT_ERROR and 'invalid room JID' in r.stderr
    ok(server.ctl('room', 'create', room))
    r = server.ctl('room', 'affiliate', room, 'bob@localhost', 'king')
    assert r.returncode == EXIT_ERROR and 'AFFILIATION must be' in r.stderr
    r = server.ctl('room', 'affiliate', room, 'bob@localhost/res',
                   'member')
    assert r.returncode == EXIT_ERROR and 'not a bare JID' in r.stderr
    r = server.ctl('room', 'destroy', room, '--reason', 'a\x01b')
    assert r.returncode == EXIT_ERROR and 'control character' in r.stderr
    r = ok(server.ctl('--json', 'room', 'destroy', room))
    assert json.loads(r.stdout) == {'occupants': 0}


def test_no_muc_service(server_factory):
    srv = server_factory(extra='module muc off')
    r = srv.ctl('rooms')
    assert r.returncode == EXIT_NOT_FOUND and 'no MUC service' in r.stderr
    r = srv.ctl('room', 'create', 'x@' + SERVICE)
    assert r.returncode == EXIT_NOT_FOUND and 'no MUC service' in r.stderr


def test_read_only_uid_lists_but_cannot_change(server_factory, other_user):
    srv = control_group_server(server_factory, other_user)
    room = 'ro@' + SERVICE
    ok(srv.ctl('room', 'create', room))

    def as_nobody(*args):
        return other_user.run([XMPPCTL_BIN, '-s', str(srv.sock)] +
                              list(args))

    r = as_nobody('--json', 'rooms')
    assert r.returncode == EXIT_OK, (r.returncode, r.stderr)
    assert [x['jid'] for x in json.loads(r.stdout)] == [room]
    assert as_nobody('room', 'show', room).returncode == EXIT_OK
    for args in (('room', 'create', 'ro2@' + SERVICE),
                 ('room', 'destroy', room),
                 ('room', 'affiliate', room, 'bob@localhost', 'member')):
        r = as_nobody(*args)
        assert r.returncode == EXIT_DENIED, (args, r.returncode, r.stderr)
    assert [x['jid'] for x in json.loads(ok(srv.ctl(
        '--json', 'rooms')).stdout)] == [room]


def test_xmpptop_batch_rooms(server, im):
    """xmpptop -b -r: the rooms by activity (messages per minute, then
    occupants), then the occupants of the most active one."""
    import os
    import subprocess
    from conftest import REPO
    top_bin = os.environ.get('XMPPTOP_BIN', str(REPO / 'build' / 'xmpptop'))
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    busy, quiet, empty = new_room(), new_room(), new_room()
    create(ca, quiet, 'alice')
    create(ca, busy, 'alice', {'muc#roomconfig_roomname': 'Busy room'})
    join(cb, busy, 'bob')
    join(cb, quiet, 'bob')
    for i in range(3):
        say(cb, busy, 'm%d' % i)
        ca.wait(is_msg(busy + '/bob'))
    ok(server.ctl('room', 'create', empty, '--persistent'))
    # the other tests' rooms of this daemon are listed too: only ours
    # are checked, in their order
    others = set(rooms_by_jid(server)) - {busy, quiet, empty}
    r = subprocess.run([top_bin, '-b', '-r', '-s', str(server.sock)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    total_occ = 4 + sum(rooms_by_jid(server)[j]['occupants']
                        for j in others)
    assert lines[0].startswith(
        'xmpptop: rooms %d, occupants %d, messages/min ' % (
            3 + len(others), total_occ)), lines[0]
    assert lines[1].split() == ['ROOM', 'OCC', 'SESS', 'MSG/MIN', 'FLAGS',
                                'NAME']
    mine = [l.split() for l in lines[2:] if l.split() and
            l.split()[0] in (busy, quiet, empty)]
    assert mine == [[busy, '2', '2', '3', '-p-', 'Busy', 'room'],
                    [quiet, '2', '2', '0', '-p-'],
                    [empty, '0', '0', '0', 'P--']]
    assert lines[2].split()[0] == busy       # the most active first
    at = lines.index('occupants of %s:' % busy)
    assert lines[at + 1].split() == ['NICK', 'ROLE', 'AFFILIATION', 'JID',
                                     'SESS']
    assert sorted(l.split() for l in lines[at + 2:]) == [
        ['alice', 'moderator', 'owner', a, '1'],
        ['bob', 'participant', 'none', b, '1']]
    # -r without -b is a usage error
    r = subprocess.run([top_bin, '-r', '-s', str(server.sock)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == EXIT_USAGE and '-r is for batch mode' in r.stderr
