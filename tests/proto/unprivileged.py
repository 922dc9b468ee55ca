"""A throwaway unprivileged user and control group for the tests of the
control socket's permissions (conftest.py's other_user fixture).

As root (CI runs as root), useradd/groupadd create, for the test session,
a system user with a group of its own and a separate group to name in
'control-group'; run() starts a program as that user with setpriv
(util-linux), in the control group or not.  Both are deleted at the end,
and so are any left behind by a session that was killed."""

import grp
import os
import pwd
import re
import shutil
import subprocess
import time

PREFIX_USER = 'xmppdtest'
PREFIX_GROUP = 'xmppdctl'
TOOLS = ('setpriv', 'useradd', 'userdel', 'groupadd', 'groupdel')


def _run_locked(cmd):
    """useradd and friends fail while another process holds the passwd
    lock (a concurrent test session): try again for a while."""
    for _ in range(50):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError('%s: exit %d: %s' % (' '.join(cmd), r.returncode,
                                            r.stderr.strip()))


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _remove_stale():
    for pw in pwd.getpwall():
        m = re.fullmatch(PREFIX_USER + r'(\d+)', pw.pw_name)
        if m and not _alive(int(m.group(1))):
            subprocess.run(['userdel', pw.pw_name], capture_output=True)
    for gr in grp.getgrall():
        m = re.fullmatch('(?:%s|%s)(\\d+)' % (PREFIX_GROUP, PREFIX_USER),
                         gr.gr_name)
        if m and not _alive(int(m.group(1))):
            subprocess.run(['groupdel', gr.gr_name], capture_output=True)


def missing_tools():
    return [t for t in TOOLS if shutil.which(t) is None]


class OtherUser:
    """name, uid, gid (its own group); ctl_group, ctl_gid: the group to
    configure as control-group."""

    def __init__(self):
        _remove_stale()
        pid = os.getpid()
        self.name = '%s%d' % (PREFIX_USER, pid)
        self.ctl_group = '%s%d' % (PREFIX_GROUP, pid)
        _run_locked(['groupadd', '--system', self.ctl_group])
        _run_locked(['useradd', '--system', '--user-group',
                     '--no-create-home', '--home-dir', '/nonexistent',
                     '--shell', '/usr/sbin/nologin', self.name])
        pw = pwd.getpwnam(self.name)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.ctl_gid = grp.getgrnam(self.ctl_group).gr_gid

    def delete(self):
        _run_locked(['userdel', self.name])
        # userdel removes the user's own group; be sure.
        subprocess.run(['groupdel', self.name], capture_output=True)
        _run_locked(['groupdel', self.ctl_group])

    def command(self, argv, member=True):
        """argv run as this user, with the control group as its only
        supplementary group (member) or none."""
        groups = (['--groups=%d' % self.ctl_gid] if member else
                  ['--clear-groups'])
        return (['setpriv', '--reuid=%d' % self.uid,
                 '--regid=%d' % self.gid] + groups + ['--'] + list(argv))

    def run(self, argv, member=True, input=None, timeout=30):
        return subprocess.run(self.command(argv, member), input=input,
                              capture_output=True, text=True,
                              timeout=timeout)
