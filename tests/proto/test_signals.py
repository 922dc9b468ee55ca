"""Signals and restarts: SIGTERM closes every session with
<system-shutdown/> and exits 0; SIGHUP keeps serving; accounts persist
across a restart on the same database."""

import signal
import time

import pytest

from xmpp_raw import NS_CLIENT, q


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT],
                         ids=['SIGTERM', 'SIGINT'])
def test_shutdown_signal_closes_sessions_with_system_shutdown(
        server_factory, sig):
    srv = server_factory()
    a = srv.login('alice@localhost', resource='one')
    b = srv.login('bob@localhost', resource='two', tls='direct')
    pre = srv.client()
    try:
        pre.open_stream()          # an unauthenticated stream too
        t0 = time.monotonic()
        srv.signal(sig)
        for c in (a, b, pre):
            c.expect_stream_error('system-shutdown', timeout=5)
        status = srv.wait_exit(5)
        assert status == 0, 'exit status %r after SIGTERM\n%s' % (
            status, srv.stderr_tail())
        assert time.monotonic() - t0 < 5
        assert srv.stop(check=False) == []    # sanitizer check, bookkeeping
    finally:
        for c in (a, b, pre):
            c.close()


def test_sighup_keeps_serving(server_factory):
    srv = server_factory()
    a = srv.login('alice@localhost', resource='stays')
    try:
        srv.signal(signal.SIGHUP)
        time.sleep(0.3)
        assert srv.proc.poll() is None, srv.stderr_tail()
        b = srv.login('bob@localhost', resource='after-hup')
        try:
            b.message('alice@localhost/stays', 'still here')
            el = a.expect_stanza('message')
            assert el.find(q(NS_CLIENT, 'body')).text == 'still here'
        finally:
            b.close()
    finally:
        a.close()


def test_accounts_persist_across_restart(server_factory):
    srv = server_factory()
    srv.adduser('carol@localhost', 'persistent')
    r = srv.ctl('passwd', 'bob@localhost', '--password-stdin',
                input='changed')
    assert r.returncode == 0, r.stderr
    srv.users['bob@localhost'] = 'changed'
    r = srv.ctl('deluser', 'alice@localhost')
    assert r.returncode == 0, r.stderr
    assert srv.stop(check=False) == [], srv.stderr_tail()

    srv.start(create_users=False)       # same directory and database
    c = srv.login('carol@localhost', resource='back')
    c.close()
    c = srv.login('bob@localhost', resource='back')
    c.close()
    r = srv.ctl('users')
    assert r.returncode == 0, r.stderr
    users = set(r.stdout.split())
    assert users == {'bob@localhost', 'carol@localhost'}, users
