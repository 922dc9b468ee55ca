"""Group chat (XEP-0045) as people see it: two real profanity clients
(alice and bob, Debian's 0.13, each in tmux with a home of its own) and a
slixmpp client (carol, its xep_0045 plugin on an asyncio loop in a thread
of its own) in one room, team@conference.localhost.

1. alice joins first: profanity says she is owner and the room is locked;
   /room accept unlocks it (the instant room).
2. alice edits the room's configuration form (/room config, then
   /fieldN on for "Members only" and "Moderated", /form submit) and makes
   bob and carol members (/affiliation set member JID).
3. bob (profanity) and carol (slixmpp) join; dave, no member, is refused
   with registration-required (407).
4. Members are participants in a moderated room (XEP-0045 §5.1.2, default
   roles), so to show what voice does alice first takes bob's away
   (/role set visitor bob): his message is refused (profanity shows the
   forbidden error) and reaches no one; alice gives it back
   (/role set participant bob) and his next message reaches alice and
   carol.
5. alice kicks carol (/kick carol REASON): carol's slixmpp gets its own
   unavailable presence with 110 and 307, the reason and alice as actor,
   and is out of the room; alice's and bob's screens say carol was kicked.

Each step is asserted on what the clients show (tmux capture-pane) or
receive (slixmpp events).  Both final screens are printed and written to
$XMPPD_TEST_ARTIFACTS/muc-screens.txt (else /tmp/muc-screens.txt), with
the MUC requests each profanity sent and the errors it got back (its
DEBUG log).

Skipped where profanity or tmux is not installed (profanity_helpers.py)."""

import asyncio
import os
import re
import threading
import time

import pytest

from profanity_helpers import Profanity, needs_profanity

pytestmark = needs_profanity

ROOM = 'team@conference.localhost'
ALICE, BOB = 'alice@localhost', 'bob@localhost'
CAROL, DAVE = 'carol@localhost', 'dave@localhost'
REFUSED = 'may I speak? 1717'
VOICED = 'thanks for the voice 2323'
KICK_REASON = 'too much noise'


@pytest.fixture
def profanities():
    made = []

    def make():
        p = Profanity(debug=True)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close()


class SlixUser:
    """A slixmpp client (xep_0045) on an event loop in a thread of its own;
    what it receives from rooms is appended to .events as tuples:
    ('presence', nick, type, role, codes, reason, actor nick),
    ('message', nick, body), ('message-error', condition)."""

    def __init__(self, server, jid):
        self.server, self.jid = server, jid
        self.events = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.x = None
        self.call(self._start)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*pending,
                                                    return_exceptions=True))
        self.loop.close()

    def call(self, coro_fn, *args, timeout=15):
        return asyncio.run_coroutine_threadsafe(
            coro_fn(*args), self.loop).result(timeout)

    async def _start(self):
        from im_helpers import slixmpp_client

        # Made in the loop's thread: slixmpp takes the running loop.
        self.x = x = slixmpp_client(self.server, self.jid)
        x.register_plugin('xep_0045')
        ready = asyncio.Event()
        x.add_event_handler('session_start', lambda _: ready.set())
        x.add_event_handler('groupchat_presence', self._presence)
        x.add_event_handler('groupchat_message', lambda m: self.events.append(
            ('message', m['from'].resource, m['body'])))
        x.add_event_handler('groupchat_message_error',
                            lambda m: self.events.append(
                                ('message-error', m['error']['condition'])))
        x.connect(('127.0.0.1', self.server.c2s_port))
        await asyncio.wait_for(ready.wait(), 10)
        x.send_presence()

    def _presence(self, pr):
        muc = pr['muc']
        item = pr.xml.find('{http://jabber.org/protocol/muc#user}x/'
                           '{http://jabber.org/protocol/muc#user}item')
        actor = reason = None
        if item is not None:
            a = item.find('{http://jabber.org/protocol/muc#user}actor')
            actor = a.get('nick') if a is not None else None
            reason = item.findtext('{http://jabber.org/protocol/muc#user}'
                                   'reason')
        self.events.append(('presence', pr['from'].resource,
                            pr['type'], muc['role'], set(muc['status_codes']),
                            reason, actor))

    def join(self, room, nick):
        """Join; (role, status codes) of one's own presence, or
        ('error', condition) when the room refuses."""
        from slixmpp.exceptions import PresenceError

        async def go():
            try:
                pres, _, _, _ = await self.x['xep_0045'].join_muc_wait(
                    room, nick, maxstanzas=0, timeout=10)
            except PresenceError as e:
                return 'error', e.presence['error']['condition']
            return pres['muc']['role'], set(pres['muc']['status_codes'])
        return self.call(go)

    def roster(self, room):
        async def go():
            return list(self.x['xep_0045'].get_roster(room) or [])
        return self.call(go)

    def mark(self):
        return len(self.events)

    def wait(self, pred, since=0, timeout=10.0, what=None):
        """The first event from index since on that satisfies pred."""
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events[since:]:
                if pred(ev):
                    return ev
            if time.monotonic() > deadline:
                raise AssertionError('%s: no %s within %.0f s; got %r'
                                     % (self.jid, what or pred, timeout,
                                        self.events))
            time.sleep(0.05)

    def close(self):
        if self.x is not None:
            try:
                self.call(self._stop, timeout=5)
            except Exception:
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    async def _stop(self):
        self.x.abort()
        await asyncio.sleep(0.05)


@pytest.fixture
def slix_users():
    made = []

    def make(server, jid):
        u = SlixUser(server, jid)
        made.append(u)
        return u
    yield make
    for u in made:
        u.close()


def field_of(screen, label):
    """The /fieldN command of a form field, found by its label on the
    screen profanity shows for /room config."""
    m = re.search(r'\[(field\d+)\] %s:' % re.escape(label), screen)
    assert m, 'no field %r in the form:\n%s' % (label, screen)
    return m.group(1)


def listed(screen, heading):
    """The JIDs profanity lists under heading ("Affiliation: member"),
    one a line ("HH:MM:SS !   jid"), up to the first line without one."""
    lines = screen.splitlines()
    for i, line in enumerate(lines):
        if heading in line:
            jids = set()
            for more in lines[i + 1:]:
                m = re.match(r'\d\d:\d\d:\d\d ! +(\S+@\S+)', more)
                if not m:
                    break
                jids.add(m.group(1))
            return jids
    return set()


def muc_traffic(p):
    """The MUC requests a profanity sent (muc#owner and muc#admin IQs,
    groupchat messages, presences to the room) and the errors it got
    back, from its DEBUG log, one line each."""
    sent, errors = [], []
    for line in p.log_text().splitlines():
        m = re.search(r'SENT: (<(iq|message|presence) .*)', line)
        if m and (ROOM in m.group(1) and re.search(
                r'muc#owner|muc#admin|type="groupchat"|muc"', m.group(1))):
            sent.append(m.group(1)[:300])
        m = re.search(r'RECV: (<(iq|message|presence) [^>]*type="error".*)',
                      line)
        if m:
            errors.append(m.group(1)[:400])
    return sent, errors


def save_screens(text):
    directory = os.environ.get('XMPPD_TEST_ARTIFACTS')
    path = (os.path.join(directory, 'muc-screens.txt') if directory
            else '/tmp/muc-screens.txt')
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    return path


def trimmed(screen):
    return '\n'.join(line.rstrip() for line in screen.rstrip().splitlines())


def test_muc_owner_members_voice_kick(server, profanities, slix_users):
    for jid in (CAROL, DAVE):
        if jid not in server.users:
            server.adduser(jid, jid.split('@')[0] + '-secret')
    t0 = time.monotonic()
    alice, bob = profanities(), profanities()
    screens = form = ''
    carol = None
    try:
        alice.connect(server, ALICE)
        bob.connect(server, BOB)
        for p in (alice, bob):
            # occupants joining and leaving shown in the room window
            p.type('/presence room all')
            p.wait(lambda s: 'All presence updates will appear in chat room '
                   'windows' in s, what='/presence room all')

        # 1. alice creates the room: owner, locked until configured.
        alice.type('/join %s nick alice' % ROOM)
        alice.wait(lambda s: 'You have joined the room as alice, role: '
                   'moderator, affiliation: owner' in s, what='owner join')
        alice.wait(lambda s: 'Room locked, requires configuration' in s,
                   what='room locked (201)')
        alice.type('/room accept')
        alice.wait(lambda s: 'Room unlocked' in s, what='room unlocked')

        # 2. members-only and moderated through the configuration form.
        alice.type('/room config')
        s = alice.wait(lambda s: "Use '/form submit'" in s,
                       what='configuration form')
        assert 'Form title: Room configuration' in s, s
        members_only = field_of(s, 'Members only')
        moderated = field_of(s, 'Moderated')
        assert '[%s] Members only: FALSE' % members_only in s, s
        assert '[%s] Moderated: FALSE' % moderated in s, s
        alice.type('/%s on' % members_only)
        alice.wait(lambda s: '[%s] Members only: TRUE' % members_only in s,
                   what='members-only set in the form')
        alice.type('/%s on' % moderated)
        form = alice.wait(lambda s: '[%s] Moderated: TRUE' % moderated in s,
                          what='moderated set in the form')
        alice.type('/form submit')
        alice.wait(lambda s: 'Room configuration successful' in s,
                   what='configuration accepted')
        for jid in (BOB, CAROL):
            alice.type('/affiliation set member %s' % jid)
        alice.type('/affiliation list member')
        s = alice.wait(lambda s: listed(s, 'Affiliation: member') >=
                       {BOB, CAROL}, what='bob and carol members')
        assert listed(s, 'Affiliation: member') == {BOB, CAROL}, s
        assert 'Error' not in s, s

        # 3. bob and carol join, dave may not.
        bob.type('/join %s nick bob' % ROOM)
        bob.wait(lambda s: 'You have joined the room as bob, role: '
                 'participant, affiliation: member' in s,
                 what='bob joined as a member')
        alice.wait(lambda s: '-> bob has joined the room' in s,
                   what='bob joining on alice\'s screen')
        carol = slix_users(server, CAROL)
        role, codes = carol.join(ROOM, 'carol')
        # a member is a participant in a moderated room (XEP-0045 §5.1.2)
        assert (role, 110 in codes) == ('participant', True), (role, codes)
        assert set(carol.roster(ROOM)) == {'alice', 'bob', 'carol'}
        for p in (alice, bob):
            p.wait(lambda s: '-> carol has joined the room' in s,
                   what='carol joining')
        dave = slix_users(server, DAVE)
        assert dave.join(ROOM, 'dave') == ('error', 'registration-required')
        for p in (alice, bob):
            assert 'dave' not in p.screen()

        # 4. voice: taken from bob, his message refused; given back, it
        # reaches alice and carol.
        seen = carol.mark()
        alice.type('/role set visitor bob')
        alice.wait(lambda s: "bob's role has been changed to: visitor" in s,
                   what='bob made visitor')
        bob.wait(lambda s: 'Your role has been changed to: visitor' in s,
                 what='bob told he is a visitor')
        carol.wait(lambda e: e[:4] == ('presence', 'bob', 'available',
                                       'visitor'),
                   since=seen, what="bob's visitor presence")
        bob.type(REFUSED)
        bob.wait(lambda s: 'Error from %s: forbidden' % ROOM in s,
                 what='the refusal of a visitor\'s message')
        seen = carol.mark()
        alice.type('/role set participant bob')
        alice.wait(lambda s: "bob's role has been changed to: participant"
                   in s, what='bob given voice')
        bob.wait(lambda s: 'Your role has been changed to: participant' in s,
                 what='bob told he has voice')
        carol.wait(lambda e: e[:4] == ('presence', 'bob', 'available',
                                       'participant'),
                   since=seen, what="bob's participant presence")
        bob.type(VOICED)
        alice.wait(lambda s: 'bob: %s' % VOICED in s, what="bob's message")
        carol.wait(lambda e: e == ('message', 'bob', VOICED),
                   what="bob's message")
        bob.wait(lambda s: 'bob: %s' % VOICED in s,
                 what="bob's message reflected")
        assert REFUSED not in alice.screen()
        # bob's own screen shows the refused text too: profanity echoes
        # what it sends to a room at once, and the error after it; the
        # room reflected nothing.
        received = [line for line in bob.log_text().splitlines()
                    if 'RECV: <message' in line and REFUSED in line]
        assert received and all('type="error"' in line and 'forbidden' in
                                line for line in received), received
        assert not [e for e in carol.events
                    if e[0] == 'message' and e[2] == REFUSED], carol.events

        # 5. alice kicks carol.
        alice.type('/kick carol %s' % KICK_REASON)
        ev = carol.wait(lambda e: e[:3] == ('presence', 'carol',
                                            'unavailable'),
                        what='own unavailable presence')
        assert ev[4] >= {110, 307}, ev
        assert ev[5] == KICK_REASON and ev[6] == 'alice', ev
        assert 'carol' not in carol.roster(ROOM)
        for p in (alice, bob):
            s = p.wait(lambda s: 'carol has been kicked from the room' in s,
                       what='carol kicked')
            assert KICK_REASON in s, s
    finally:
        for who, p in (('alice', alice), ('bob', bob)):
            sent, errors = muc_traffic(p)
            screens += ('==== %s: final screen ====\n%s\n'
                        '---- %s: MUC stanzas sent (%d) ----\n%s\n'
                        '---- %s: errors received (%d) ----\n%s\n'
                        % (who, trimmed(p.screen()), who, len(sent),
                           '\n'.join(sent), who, len(errors),
                           '\n'.join(errors)))
        if form:
            screens += ('==== alice: the /room config form before '
                        '/form submit ====\n%s\n' % trimmed(form))
        if carol is not None:
            screens += ('==== carol (slixmpp): what she received in the '
                        'room ====\n%s\n'
                        % '\n'.join(repr(e) for e in carol.events))
        path = save_screens(screens)
        print(screens)
        print('(written to %s; %.1f s)' % (path, time.monotonic() - t0))
