"""Daemon hygiene: configuration checks, refusing a corrupt database,
SIGHUP reload of configuration and certificates, the pidfile, the control
socket's guards, and dropping privileges when started as root."""

import hashlib
import os
import pwd
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import XMPPD_BIN, Server, assert_control_socket, free_ports


def run_xmppd(*args, cwd=None, timeout=20):
    return subprocess.run([XMPPD_BIN] + list(args), capture_output=True,
                          text=True, cwd=cwd, timeout=timeout)


def cert_fingerprint(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(('127.0.0.1', port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname='localhost') as t:
            return hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest()


def new_certificate(directory, name):
    cert, key = directory / (name + '.pem'), directory / (name + '.key')
    subprocess.run(
        ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
         'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
         '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost',
         '-keyout', str(key), '-out', str(cert)],
        check=True, capture_output=True)
    return cert, key


def test_config_check_ok(certificate, tmp_path):
    srv = Server(certificate, directory=tmp_path)
    srv.c2s_port, srv.tls_port = 15999, 15998
    srv.conf.write_text(srv.config_text())
    r = run_xmppd('-n', '-f', str(srv.conf))
    assert r.returncode == 0, r.stderr
    assert 'configuration OK' in r.stdout


def test_config_check_reports_file_and_line(tmp_path):
    conf = tmp_path / 'bad.conf'
    conf.write_text('log-level info\nstanza-sise 10\n')
    r = run_xmppd('-n', '-f', str(conf))
    assert r.returncode == 1
    assert '%s:2:' % conf in r.stderr, r.stderr


def test_config_check_reports_missing_certificate(tmp_path):
    conf = tmp_path / 'x.conf'
    conf.write_text('listen c2s 15222\nhost "localhost" {\n'
                    '\tcertificate "%s/none.pem"\n\tkey "%s/none.key"\n}\n'
                    % (tmp_path, tmp_path))
    r = run_xmppd('-n', '-f', str(conf))
    assert r.returncode == 1
    assert 'cannot load certificate' in r.stderr, r.stderr


def test_unknown_option_is_usage_error():
    r = run_xmppd('-Q')
    assert r.returncode == 2
    assert 'usage' in r.stderr


def test_corrupt_database_refused(certificate, tmp_path):
    srv = Server(certificate, directory=tmp_path)
    garbage = b'this is not an SQLite database\n' * 200
    srv.db.write_bytes(garbage)
    srv.c2s_port, srv.tls_port = 15997, 15996
    srv.conf.write_text(srv.config_text())
    r = run_xmppd('-d', '-f', str(srv.conf))
    assert r.returncode == 1
    assert 'refusing to start' in r.stderr and 'not a database' in r.stderr, \
        r.stderr
    assert srv.db.read_bytes() == garbage


def test_pidfile_written_and_removed(server_factory, tmp_path):
    pidfile = tmp_path / 'xmppd.pid'
    srv = server_factory(extra='pidfile "%s"' % pidfile)
    assert pidfile.read_text().strip() == str(srv.proc.pid)
    srv.stop()
    assert not pidfile.exists()


def test_sighup_reloads_certificate(server_factory, tmp_path):
    srv = server_factory()
    before = cert_fingerprint(srv.tls_port)
    cert, key = new_certificate(tmp_path, 'second')
    os.replace(cert, srv.cert)
    os.replace(key, srv.key)
    srv.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while 'reloaded' not in srv.stderr_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert 'configuration and certificates reloaded' in srv.stderr_text()
    after = cert_fingerprint(srv.tls_port)
    assert after != before
    srv.assert_serves()


def test_sighup_with_broken_config_keeps_running(server_factory):
    srv = server_factory()
    srv.conf.write_text(srv.conf.read_text() + 'bogus-option 1\n')
    srv.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while 'reload failed' not in srv.stderr_text() and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    assert 'reload failed, keeping the running configuration' in \
        srv.stderr_text()
    srv.assert_serves()


def test_second_daemon_on_same_socket_refused(server_factory):
    srv = server_factory()
    (srv.dir / 'other').mkdir()
    other = Server(srv_cert(srv), directory=srv.dir / 'other')
    other.sock = srv.sock
    other.c2s_port, other.tls_port = 15995, 15994
    text = other.config_text().replace(str(other.dir / 'xmppd.sock'),
                                       str(srv.sock))
    other.conf.write_text(text)
    r = run_xmppd('-d', '-f', str(other.conf))
    assert r.returncode == 1
    assert 'another xmppd' in r.stderr, r.stderr
    srv.assert_serves()


def srv_cert(srv):
    return (srv.cert, srv.key)


def test_control_socket_symlink_refused(certificate, tmp_path):
    srv = Server(certificate, directory=tmp_path)
    os.symlink('/tmp/elsewhere.sock', srv.sock)
    srv.c2s_port, srv.tls_port = 15993, 15992
    srv.conf.write_text(srv.config_text())
    r = run_xmppd('-d', '-f', str(srv.conf))
    assert r.returncode == 1
    assert 'symlink' in r.stderr or 'symbolic link' in r.stderr, r.stderr


@pytest.mark.parametrize('kind', ['a regular file', 'a directory', 'a FIFO'])
def test_control_socket_path_not_a_socket_refused(certificate, tmp_path,
                                                  kind):
    """Whatever is at the control socket's path and is not a socket (a
    file a mistyped control-socket points at, say) is left alone: the
    daemon refuses to start and says why."""
    srv = Server(certificate, directory=tmp_path)
    if kind == 'a regular file':
        srv.sock.write_text('precious\n')
    elif kind == 'a directory':
        srv.sock.mkdir()
    else:
        os.mkfifo(srv.sock)
    before = os.lstat(srv.sock)
    srv.c2s_port, srv.tls_port = free_ports(2)
    srv.conf.write_text(srv.config_text())
    r = run_xmppd('-d', '-f', str(srv.conf))
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert r.stderr.rstrip('\n').endswith(
        ' xmppd error: control socket %s exists and is %s, not a socket; '
        'refusing to replace it (remove it, or set control-socket to '
        'another path)' % (srv.sock, kind)), r.stderr
    after = os.lstat(srv.sock)
    assert (after.st_ino, after.st_mode, after.st_mtime_ns) == (
        before.st_ino, before.st_mode, before.st_mtime_ns)
    if kind == 'a regular file':
        assert srv.sock.read_text() == 'precious\n'


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to drop privileges')
def test_drops_privileges_to_configured_user(server_factory, tmp_path):
    nobody = pwd.getpwnam('nobody')
    srv = server_factory(start=False, extra='user "nobody"')
    os.chown(srv.dir, nobody.pw_uid, nobody.pw_gid)
    srv.start()
    status = open('/proc/%d/status' % srv.proc.pid).read()
    uid_line = [ln for ln in status.splitlines() if ln.startswith('Uid:')][0]
    assert uid_line.split()[1:] == [str(nobody.pw_uid)] * 4, uid_line
    assert_control_socket(srv, nobody.pw_uid, nobody.pw_gid)
    srv.assert_serves()
