"""Profanity (Debian's 0.13), a real terminal client, driven in tmux as a
person would: it logs in over STARTTLS, finds the message archive
(XEP-0313) and, with "/mam on", shows a contact's history from it when
the chat window opens.  Profanity 0.13 looks for urn:xmpp:mam:2 only on
the server's disco#info (test_mam.py checks the advertisement itself).

Skipped where profanity or tmux is not installed (profanity_helpers.py,
shared with test_omemo_profanity.py)."""

import pytest

from profanity_helpers import Profanity, needs_profanity

pytestmark = needs_profanity

NO_MAM = "Server doesn't support MAM"


@pytest.fixture
def profanity():
    p = Profanity()
    yield p
    p.close()


def test_profanity_loads_history_from_the_archive(server, profanity):
    # Some history between alice and bob, both online, then gone.
    a = server.login('alice@localhost', resource='earlier')
    b = server.login('bob@localhost', resource='earlier')
    try:
        a.presence()
        b.presence()
        for i in range(3):
            b.message('alice@localhost', 'archived from bob %d' % i)
            a.message('bob@localhost', 'archived from alice %d' % i)
        for c in (a, b):    # the messages crossed: each gets its three
            for _ in range(3):
                c.expect_stanza('message')
        a.end_stream()
        b.end_stream()
    finally:
        a.close()
        b.close()

    p = profanity
    p.type('/mam on')
    p.connect(server, 'alice@localhost')
    p.type('/msg bob@localhost')
    s = p.wait(lambda s: all('archived from %s %d' % (who, i) in s
                             for who in ('bob', 'alice') for i in range(3)),
               what='history from the archive')
    assert NO_MAM not in s, s
    p.type('/win 1')
    s = p.wait(lambda s: 'logged in successfully' in s, what='console')
    assert NO_MAM not in s, s
