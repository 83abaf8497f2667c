"""A guest's serial console as a libvirt stream (virDomainOpenConsole), on a connection of its own.

libvirt's non-blocking streams need an event loop registered process-wide before any connection
opens; rather than impose one on every driver, a session reads its blocking stream in a thread of
its own and hands the bytes over through a queue. Aborting the stream wakes that thread up.
"""

from __future__ import annotations

import contextlib
import queue
import threading

import libvirt

from cloudlet.drivers.base import ConsoleClosed, GuestFailed, GuestNotFound
from cloudlet.drivers.libvirt import host
from cloudlet.drivers.libvirt.domain_xml import domain_name

CHUNK = 4096
_END = b""  # what the reader queues once the stream has ended


class LibvirtSerial:
    """One session on a guest's serial console (see HypervisorDriver.open_serial)."""

    def __init__(self, conn: libvirt.virConnect, stream: libvirt.virStream, name: str) -> None:
        self.name = name
        self._conn = conn
        self._stream = stream
        self._received: queue.Queue[bytes] = queue.Queue()
        self._ended = threading.Event()
        self._closing = threading.Lock()
        self._closed = False
        self._reader = threading.Thread(target=self._read_stream, name=f"serial-{name}", daemon=True)
        self._reader.start()

    @classmethod
    def open(cls, uri: str, name: str) -> LibvirtSerial:
        """Attach to guest name's console on the node at uri, taking it over from any other session."""
        conn = host.connect(uri)
        try:
            with host.translated():
                try:
                    domain = conn.lookupByName(domain_name(name))
                except libvirt.libvirtError as error:
                    if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                        raise GuestNotFound(name) from error
                    raise
                if not domain.isActive():
                    raise GuestFailed(f"guest {name} is not running: its serial console exists only while it runs")
                stream = conn.newStream(0)
                domain.openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
        except BaseException:
            conn.close()
            raise
        return cls(conn, stream, name)

    def _read_stream(self) -> None:
        try:
            while True:
                data = self._stream.recv(CHUNK)
                if not isinstance(data, bytes) or not data:  # 0 bytes: the guest's side closed
                    break
                self._received.put(data)
        except libvirt.libvirtError:
            pass  # aborted by close(), taken over, or the guest stopped: all end the session
        finally:
            self._ended.set()
            self._received.put(_END)

    def read(self, timeout: float) -> bytes:
        """What arrived since the last read, waiting up to timeout for the first bytes."""
        try:
            first = self._received.get(timeout=timeout)
        except queue.Empty:
            return b""
        chunks = [first]
        while chunks[-1] != _END:
            try:
                chunks.append(self._received.get_nowait())
            except queue.Empty:
                break
        data = b"".join(chunks)
        if chunks[-1] == _END:
            self._received.put(_END)  # every later read ends too
            if not data:
                raise ConsoleClosed(f"the serial console session of guest {self.name} has ended")
        return data

    def write(self, data: bytes) -> None:
        """Send data to the guest's serial port."""
        if self._ended.is_set() or self._closed:
            raise ConsoleClosed(f"the serial console session of guest {self.name} has ended")
        sent = 0
        try:
            while sent < len(data):
                count = self._stream.send(data[sent:])
                if count <= 0:
                    raise ConsoleClosed(f"the serial console of guest {self.name} takes no more input")
                sent += count
        except libvirt.libvirtError as error:
            raise ConsoleClosed(f"the serial console session of guest {self.name} has ended") from error

    def close(self) -> None:
        """Abort the stream, let the reader finish and close the session's connection."""
        with self._closing:
            if self._closed:
                return
            self._closed = True
        with contextlib.suppress(libvirt.libvirtError):  # already ended from the other side
            self._stream.abort()
        self._reader.join(timeout=5)
        with contextlib.suppress(libvirt.libvirtError):  # the connection broke with the session
            self._conn.close()
