"""A TCP forwarder on loopback for the tests that need a connection to
die under a client (XEP-0198 resumption): each accepted connection is
joined to a new one to the daemon and pumped by a thread of its own.

    p = TcpProxy(server.c2s_port)      # listens on 127.0.0.1:p.port
    p.hold('up')        # stop reading what the client sends (it stays in
                        # the kernel's buffers, then dies with the cut)
    p.hold('down')      # likewise for what the server sends
    p.cut()             # RST to both sides (SO_LINGER 0, then close)
    p.cut(server=False) # RST to the client only; the daemon's side stays
                        # open and unread: a connection dead in silence
    p.cut_with_ss()     # ss -K on the proxy's two sockets (root, and a
                        # kernel with CONFIG_INET_DIAG_DESTROY)

The proxy keeps listening after a cut, so a client reconnects to the
same port.  Everything a pair's thread does to its sockets it does
itself (a cut is a request it carries out), so no socket is closed under
another thread's select().
"""

import select
import socket
import struct
import subprocess
import threading
import time

DIRECTIONS = ('up', 'down')     # up: client -> server


def reset_close(sock):
    """Close with an RST rather than a FIN (SO_LINGER on, timeout 0)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack('ii', 1, 0))
    except OSError:
        pass
    sock.close()


def ss_kill_works():
    """Whether ss -K can destroy a TCP socket here (root, and a kernel
    with INET_DIAG_DESTROY): tried on a loopback pair of our own."""
    listener = socket.socket()
    try:
        listener.bind(('127.0.0.1', 0))
        listener.listen(1)
        c = socket.create_connection(listener.getsockname(), 2)
        s, _ = listener.accept()
        try:
            r = subprocess.run(
                ['ss', '-K', '-t', 'src', '127.0.0.1:%d' % c.getsockname()[1],
                 'dst', '127.0.0.1:%d' % listener.getsockname()[1]],
                capture_output=True, text=True, timeout=10)
            s.settimeout(1)
            try:
                return r.returncode == 0 and s.recv(1) == b'' and False
            except ConnectionResetError:
                return True
            except OSError:
                return False
        finally:
            c.close()
            s.close()
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        listener.close()


class Pair(threading.Thread):
    """One client connection and its connection to the daemon."""

    def __init__(self, proxy, client, upstream):
        super().__init__(daemon=True)
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.client_addr = client.getpeername()
        self.upstream_local = upstream.getsockname()
        self.held = set()
        self.request = None         # ('cut', server) while asked
        self.done = threading.Event()
        self.closed = threading.Event()
        self.bytes = {'up': 0, 'down': 0}
        self.lock = threading.Lock()

    def _ask(self, request, timeout=5.0):
        with self.lock:
            if self.closed.is_set():
                return
            self.done.clear()
            self.request = request
        if not self.done.wait(timeout):
            raise AssertionError('proxy pair did not carry out %r'
                                 % (request,))

    def cut(self, server=True):
        self._ask(('cut', server))

    def run(self):
        socks = {self.client: ('up', self.upstream),
                 self.upstream: ('down', self.client)}
        try:
            while True:
                with self.lock:
                    req, self.request = self.request, None
                if req is not None:
                    self._carry_out(req)
                    return
                readable = [s for s, (d, _) in socks.items()
                            if d not in self.held]
                r, _, _ = select.select(readable, [], [], 0.02)
                for s in r:
                    direction, dest = socks[s]
                    try:
                        data = s.recv(65536)
                    except OSError:
                        data = b''
                    if not data:
                        # A side ended: pass the end on, as a proxy does.
                        self._close_both()
                        return
                    try:
                        dest.sendall(data)
                    except OSError:
                        self._close_both()
                        return
                    self.bytes[direction] += len(data)
        finally:
            self.closed.set()
            self.done.set()

    def _carry_out(self, req):
        _, server = req
        reset_close(self.client)
        if server:
            reset_close(self.upstream)
        else:
            # Left open and never read again: the daemon learns nothing.
            self.proxy.orphans.append(self.upstream)
        self.done.set()

    def _close_both(self):
        for s in (self.client, self.upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


class TcpProxy:
    """Listens on 127.0.0.1 (port 0: any free one) and forwards every
    connection to 127.0.0.1:upstream_port."""

    def __init__(self, upstream_port, port=0):
        self.upstream_port = upstream_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(('127.0.0.1', port))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.pairs = []
        self.orphans = []           # daemon-side sockets left open
        self.accepted = 0
        self._held = set()
        self._stop = False
        self._thread = threading.Thread(target=self._accept_loop,
                                        daemon=True)
        self._thread.start()

    def _accept_loop(self):
        while not self._stop:
            r, _, _ = select.select([self.listener], [], [], 0.05)
            if not r or self._stop:
                continue
            try:
                client, _ = self.listener.accept()
            except OSError:
                continue
            try:
                up = socket.create_connection(('127.0.0.1',
                                               self.upstream_port), 5)
            except OSError:
                reset_close(client)
                continue
            for s in (client, up):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = Pair(self, client, up)
            pair.held = set(self._held)
            self.pairs.append(pair)
            self.accepted += 1
            pair.start()

    def live(self):
        return [p for p in self.pairs if not p.closed.is_set()]

    def wait_connections(self, n, timeout=10.0):
        """Wait until n connections were accepted in all."""
        deadline = time.monotonic() + timeout
        while self.accepted < n:
            if time.monotonic() > deadline:
                raise AssertionError('proxy: %d connections, not %d'
                                     % (self.accepted, n))
            time.sleep(0.01)

    def hold(self, direction):
        """Stop forwarding in direction ('up' or 'down') on the live
        connections and those accepted later."""
        assert direction in DIRECTIONS, direction
        self._held.add(direction)
        for p in self.live():
            p.held.add(direction)
        time.sleep(0.05)            # a select() in progress ends

    def release(self, direction):
        self._held.discard(direction)
        for p in self.live():
            p.held.discard(direction)

    def cut(self, server=True):
        """Kill every live connection with an RST to the client and (if
        server) to the daemon; new connections are forwarded normally."""
        self._held.clear()
        for p in self.live():
            p.cut(server)

    def cut_with_ss(self):
        """Destroy the proxy's own sockets of every live connection in
        the kernel (ss -K, SOCK_DESTROY): both peers get an RST.  Returns
        False if ss could not (not root, or no INET_DIAG_DESTROY)."""
        ok = True
        live = self.live()
        for p in live:
            # The pump must not see the first socket die and close the
            # second with a FIN before ss gets to it.
            p.held.update(DIRECTIONS)
        time.sleep(0.05)
        for p in live:
            for local, remote in (
                    (('127.0.0.1', self.port), p.client_addr),
                    (p.upstream_local, ('127.0.0.1', self.upstream_port))):
                r = subprocess.run(
                    ['ss', '-K', '-t', 'src', '%s:%d' % local, 'dst',
                     '%s:%d' % remote], capture_output=True, text=True,
                    timeout=10)
                # ss prints the sockets it destroyed; none means it could
                # not (it says nothing on EOPNOTSUPP).
                if r.returncode != 0 or str(local[1]) not in r.stdout:
                    ok = False
        for p in live:
            # Destroyed sockets are only closed now; anything ss left
            # alive is reset, so the connection is gone either way.
            p.cut(True)
        self._held.clear()
        return ok

    def orphan_closed(self, timeout):
        """Whether the daemon closed every connection that cut(server=
        False) left open (its queued bytes are read and dropped)."""
        deadline = time.monotonic() + timeout
        for s in self.orphans:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                r, _, _ = select.select([s], [], [], left)
                if not r:
                    continue
                try:
                    if not s.recv(65536):
                        break
                except OSError:
                    break
        return True

    def close(self):
        self._stop = True
        self._thread.join(2)
        self.listener.close()
        for p in self.live():
            try:
                p.cut(True)
            except AssertionError:
                pass
        for s in self.orphans:
            reset_close(s)
        self.orphans = []
