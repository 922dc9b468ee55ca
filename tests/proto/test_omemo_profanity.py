"""OMEMO (XEP-0384, the eu.siacs.conversations.axolotl version Debian's
profanity 0.13 speaks) between two real profanity clients, each in tmux
with a home of its own: alice and bob, subscribed to each other, generate
their keys (/omemo gen: the device list and the bundle are published
with PEP, XEP-0163), alice starts an OMEMO session with bob (fetching his
device list and bundle from his PEP service) and writes; bob reads the
message decrypted and answers encrypted; alice reads the answer
decrypted.  The archive (XEP-0313) holds the two messages with
<encrypted xmlns='eu.siacs.conversations.axolotl'/> and without their
text anywhere.

Both final screens are printed and written to
$XMPPD_TEST_ARTIFACTS/omemo-screens.txt (else /tmp/omemo-screens.txt),
with the PEP requests each profanity sent and the errors it got back
(from its DEBUG log: libstrophe's SENT/RECV lines).

Trust, as two careful people would: each reads its own fingerprint
(/omemo fingerprint), the other's client shows the same fingerprint for
the key it fetched from the contact's PEP bundle, and it is trusted with
/omemo trust (profanity's "firstusage" trust mode did not trust bob's
key in 0.13.1: "We don't trust device", the message then goes to no
one).

Skipped where profanity or tmux is not installed (profanity_helpers.py)."""

import os
import re
import time

import pytest

from im_helpers import IMClient, subscribe_both
from profanity_helpers import Profanity, needs_profanity
from test_mam import mam_query, parse_result
from xmpp_raw import NS_CLIENT, q, tostr

pytestmark = needs_profanity

NS_OMEMO = 'eu.siacs.conversations.axolotl'
ALICE, BOB = 'alice@localhost', 'bob@localhost'
TO_BOB = 'omemo from alice to bob 4711'
TO_ALICE = 'omemo answer from bob to alice 0815'
# profanity's line when it cannot decrypt ("Unable to decrypt OMEMO
# message"), the fallback body it sends along with the ciphertext, and
# its refusal to send to untrusted keys.
UNDECRYPTED = re.compile(r'(?i)unable to decrypt|encrypted with OMEMO|'
                         r'cannot be decrypted')
FINGERPRINT = r'([0-9a-f]{8}(?:-[0-9a-f]{8}){7})'
KEYS_TIMEOUT = 30.0


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


def subscribed(server):
    """alice and bob subscribed to each other ('both'), as their clients
    would do it, then gone."""
    a = IMClient(server.login(ALICE, resource='setup'), ALICE)
    b = IMClient(server.login(BOB, resource='setup'), BOB)
    try:
        for c in (a, b):
            c.roster_get()
            c.presence()
        subscribe_both(a, b)
        for c in (a, b):
            c.close_stream()
    finally:
        a.raw.close()
        b.raw.close()


def pep_traffic(p):
    """The PEP requests a profanity sent (pubsub IQs), the notifications
    and the errors it received, from its DEBUG log, one line each,
    shortened."""
    sent, events, errors = [], [], []
    for line in p.log_text().splitlines():
        m = re.search(r'RECV: <message [^>]*from="([^"]*)".*'
                      r'pubsub#event"><items node="([^"]*)"', line)
        if m:
            events.append('%s from=%s' % (m.group(2), m.group(1)))
        m = re.search(r'SENT: (<iq .*)', line)
        if m and 'http://jabber.org/protocol/pubsub' in m.group(1):
            s = m.group(1)
            kind = re.search(r'<(publish|items|subscribe|configure|'
                             r'retract|delete|purge)\b[^>]*>', s)
            typ = re.search(r'type="(\w+)"', s)
            to = re.search(r'to="([^"]*)"', s)
            sent.append('%s %s%s' % (typ.group(1) if typ else '?',
                                     kind.group(0) if kind else s[:120],
                                     ' to=' + to.group(1) if to else ''))
            if '<publish-options' in s:
                sent[-1] += ' +publish-options'
        m = re.search(r'RECV: (<iq [^>]*type="error".*)', line)
        if m:
            errors.append(m.group(1)[:400])
    return sent, events, errors


def save_screens(text):
    directory = os.environ.get('XMPPD_TEST_ARTIFACTS')
    path = (os.path.join(directory, 'omemo-screens.txt') if directory
            else '/tmp/omemo-screens.txt')
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    return path


def archived_messages(server, jid):
    """The messages of jid's archive as (body, inner message) through
    MAM, read by a session of jid's own."""
    c = IMClient(server.login(jid, resource='archive-check'), jid)
    try:
        results, iq = mam_query(c)
        assert iq.get('type') == 'result', tostr(iq)
        rows = []
        for el in results:
            _, _, msg = parse_result(c, el)
            body = msg.find(q(NS_CLIENT, 'body'))
            rows.append((body.text if body is not None else None, msg))
        c.close_stream()
        return rows
    finally:
        c.raw.close()


def generate_keys(p):
    """/omemo gen; the fingerprint of the new identity key."""
    p.type('/omemo gen')
    p.wait(lambda s: 'materials generated' in s, timeout=KEYS_TIMEOUT,
           what='OMEMO keys generated')
    p.type('/omemo fingerprint')
    s = p.wait(lambda s: re.search('Your OMEMO fingerprint: ' + FINGERPRINT,
                                   s), what='own fingerprint')
    return re.search('Your OMEMO fingerprint: ' + FINGERPRINT, s).group(1)


def start_and_trust(p, contact, fingerprint):
    """/omemo start contact (its device list and bundle fetched from its
    PEP nodes), check the key fetched is the one the contact's own client
    shows, and trust it."""
    p.type('/omemo start %s' % contact)
    p.wait(lambda s: re.search(r'(?m)^ %s \[online\] \[OMEMO\]'
                               % re.escape(contact), s),
           what='OMEMO chat window with %s' % contact)
    want = "%s's OMEMO fingerprint: %s" % (contact, fingerprint)
    deadline = time.monotonic() + KEYS_TIMEOUT
    while True:
        p.type('/omemo fingerprint %s' % contact)
        try:
            p.wait(lambda s: want in s, timeout=2, what=want)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
    p.type('/omemo trust %s %s' % (contact, fingerprint))
    p.wait(lambda s: want + ' (trusted)' in s, what='trusted')


def decrypted(text, sender):
    """A line of an OMEMO message from sender, shown with profanity's
    OMEMO mark '~' (an unencrypted one has '-')."""
    return re.compile(r'(?m)^\d\d:\d\d:\d\d ~ %s/[^:]*: %s$'
                      % (re.escape(sender), re.escape(text)))


def test_omemo_between_two_profanities(server, profanities):
    subscribed(server)
    alice, bob = profanities(), profanities()
    screens = ''
    try:
        alice.connect(server, ALICE)
        bob.connect(server, BOB)
        fp_alice = generate_keys(alice)
        fp_bob = generate_keys(bob)

        start_and_trust(alice, BOB, fp_bob)
        alice.type(TO_BOB)
        s = alice.wait(lambda s: TO_BOB in s, what='the message sent')
        assert not UNDECRYPTED.search(s), s
        # bob: the console says a message came, in window 2.
        bob.wait(lambda s: '<< chat message: %s' % ALICE in s,
                 timeout=KEYS_TIMEOUT, what='message from alice')
        bob.type('/win 2')
        s = bob.wait(lambda s: TO_BOB in s or UNDECRYPTED.search(s),
                     what='the message')
        assert decrypted(TO_BOB, ALICE).search(s), s
        assert not UNDECRYPTED.search(s), s

        start_and_trust(bob, ALICE, fp_alice)
        bob.type(TO_ALICE)
        s = alice.wait(lambda s: TO_ALICE in s or UNDECRYPTED.search(s),
                       timeout=KEYS_TIMEOUT, what='the answer')
        assert decrypted(TO_ALICE, BOB).search(s), s
        assert not UNDECRYPTED.search(s), s
    finally:
        for who, p in (('alice', alice), ('bob', bob)):
            sent, events, errors = pep_traffic(p)
            screens += ('==== %s: final screen ====\n%s\n'
                        '---- %s: PEP requests sent (%d) ----\n%s\n'
                        '---- %s: PEP notifications received (%d) ----\n'
                        '%s\n'
                        '---- %s: IQ errors received (%d) ----\n%s\n'
                        % (who, p.screen().rstrip('\n'), who, len(sent),
                           '\n'.join(sent), who, len(events),
                           '\n'.join(events), who, len(errors),
                           '\n'.join(errors)))
        path = save_screens(screens)
        print(screens)
        print('(written to %s)' % path)

    # On the wire the messages were encrypted: the archive has each with
    # its <encrypted/> payload and the text nowhere (profanity puts a
    # fallback <body/> beside the ciphertext).
    for jid in (ALICE, BOB):
        rows = archived_messages(server, jid)
        omemo = [m for _, m in rows if m.find(q(NS_OMEMO, 'encrypted'))
                 is not None]
        assert len(omemo) >= 2, [tostr(m) for _, m in rows]
        for _, m in rows:
            text = tostr(m)
            assert TO_BOB not in text and TO_ALICE not in text, text
        for m in omemo:
            enc = m.find(q(NS_OMEMO, 'encrypted'))
            assert enc.find(q(NS_OMEMO, 'payload')) is not None, tostr(m)
            assert enc.find(q(NS_OMEMO, 'header')) is not None, tostr(m)
    r = server.ctl('history', ALICE, BOB)
    assert r.returncode == 0, r.stderr
    assert TO_BOB not in r.stdout and TO_ALICE not in r.stdout, r.stdout
