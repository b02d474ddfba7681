"""Tiny hand-rolled AMQP 0-9-1 frame builder / parser for raw-socket tests.

Deliberately independent of pika so that malformed traffic can be produced.
"""

import socket
import struct
import time

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_END = 0xCE

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8


# ---------------------------------------------------------------- encoders
def shortstr(s):
    if isinstance(s, str):
        s = s.encode()
    assert len(s) < 256
    return struct.pack(">B", len(s)) + s


def longstr(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack(">I", len(s)) + s


def table(d):
    out = b""
    for k, v in d.items():
        out += shortstr(k)
        if isinstance(v, bool):
            out += b"t" + struct.pack(">B", int(v))
        elif isinstance(v, int):
            out += b"I" + struct.pack(">i", v)
        elif isinstance(v, (str, bytes)):
            out += b"S" + longstr(v)
        elif isinstance(v, dict):
            out += b"F" + table(v)
        else:
            raise TypeError(type(v))
    return struct.pack(">I", len(out)) + out


def frame(ftype, channel, payload, end=FRAME_END, size=None):
    if size is None:
        size = len(payload)
    return struct.pack(">BHI", ftype, channel, size) + payload + bytes([end])


def method(channel, class_id, method_id, args=b""):
    return frame(FRAME_METHOD, channel,
                 struct.pack(">HH", class_id, method_id) + args)


def content_header(channel, body_size, class_id=60, flags=0, props=b""):
    return frame(FRAME_HEADER, channel,
                 struct.pack(">HHQH", class_id, 0, body_size, flags) + props)


def body(channel, data):
    return frame(FRAME_BODY, channel, data)


def heartbeat(channel=0):
    return frame(FRAME_HEARTBEAT, channel, b"")


def channel_open(channel):
    return method(channel, 20, 10, shortstr(""))


def basic_publish(channel, exchange, routing_key, mandatory=False):
    return method(channel, 60, 40,
                  struct.pack(">H", 0) + shortstr(exchange) + shortstr(routing_key)
                  + struct.pack(">B", 1 if mandatory else 0))


def queue_declare(channel, name, passive=False, durable=False, exclusive=False,
                  auto_delete=False):
    bits = (passive << 0) | (durable << 1) | (exclusive << 2) | (auto_delete << 3)
    return method(channel, 50, 10,
                  struct.pack(">H", 0) + shortstr(name) + struct.pack(">B", bits)
                  + table({}))


# ---------------------------------------------------------------- decoding
class Closed(Exception):
    pass


class RawConn:
    def __init__(self, host, port, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.frame_max = None
        self.heartbeat = None
        self.channel_max = None

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("timed out waiting for data")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed(f"peer closed; {len(self.buf)} bytes buffered")
            self.buf += chunk

    def read_exact(self, n, timeout=5.0):
        self._fill(n, time.monotonic() + timeout)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self, timeout=5.0):
        """Return (type, channel, payload); heartbeats are returned too."""
        deadline = time.monotonic() + timeout
        self._fill(7, deadline)
        ftype, ch, size = struct.unpack(">BHI", self.buf[:7])
        self._fill(7 + size + 1, deadline)
        payload = self.buf[7:7 + size]
        end = self.buf[7 + size]
        self.buf = self.buf[8 + size:]
        assert end == FRAME_END, f"bad frame end from server: {end:#x}"
        return ftype, ch, payload

    def read_method(self, timeout=5.0):
        """Next method frame, skipping heartbeats: (channel, class, method, args)."""
        deadline = time.monotonic() + timeout
        while True:
            ftype, ch, payload = self.read_frame(max(0.01, deadline - time.monotonic()))
            if ftype == FRAME_HEARTBEAT:
                continue
            assert ftype == FRAME_METHOD, f"expected method frame, got type {ftype}"
            cls, mth = struct.unpack(">HH", payload[:4])
            return ch, cls, mth, payload[4:]

    def read_until_eof(self, timeout=5.0):
        """Read everything until the peer closes; return the bytes read."""
        deadline = time.monotonic() + timeout
        data = self.buf
        self.buf = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("peer did not close the socket")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk

    def handshake(self, frame_max=131072, heartbeat=0, vhost="/",
                  user="guest", password="guest", mechanism="PLAIN",
                  capabilities=None, channel_max=None):
        """channel_max: what tune-ok answers (default: the server's offer)."""
        self.send(PROTOCOL_HEADER)
        ch, cls, mth, args = self.read_method()
        assert (ch, cls, mth) == (0, 10, 10), "expected connection.start"
        if mechanism == "AMQPLAIN":
            # A field table without its 4-byte length prefix.
            response = table({"LOGIN": user, "PASSWORD": password})[4:]
        else:
            response = b"\x00" + user.encode() + b"\x00" + password.encode()
        self.send(method(0, 10, 11,
                         table({"product": "warren-raw-test",
                                "capabilities": capabilities or
                                {"publisher_confirms": True,
                                 "authentication_failure_close": True}})
                         + shortstr(mechanism) + longstr(response) + shortstr("en_US")))
        ch, cls, mth, args = self.read_method()
        assert (ch, cls, mth) == (0, 10, 30), "expected connection.tune"
        srv_ch_max, srv_frame_max, srv_hb = struct.unpack(">HIH", args[:8])
        if srv_frame_max:
            frame_max = min(frame_max, srv_frame_max)
        self.frame_max = frame_max
        self.heartbeat = heartbeat
        self.channel_max = srv_ch_max or 2047
        if channel_max is not None:
            self.channel_max = channel_max
        self.send(method(0, 10, 31, struct.pack(">HIH", self.channel_max,
                                                 frame_max, heartbeat)))
        self.send(method(0, 10, 40, shortstr(vhost) + shortstr("") + b"\x00"))
        ch, cls, mth, args = self.read_method()
        assert (ch, cls, mth) == (0, 10, 41), f"expected connection.open-ok, got {(ch, cls, mth)}"

    def open_channel(self, channel=1):
        self.send(channel_open(channel))
        ch, cls, mth, _ = self.read_method()
        assert (ch, cls, mth) == (channel, 20, 11), "expected channel.open-ok"

    def expect_connection_close(self, timeout=5.0):
        """Wait for connection.close; answer close-ok; return decoded args.

        Returns dict(reply_code, reply_text, class_id, method_id).
        Other method frames (e.g. channel traffic) before it are skipped.
        """
        deadline = time.monotonic() + timeout
        while True:
            ch, cls, mth, args = self.read_method(max(0.01, deadline - time.monotonic()))
            if (ch, cls, mth) == (0, 10, 50):
                break
        code, = struct.unpack(">H", args[:2])
        tlen = args[2]
        text = args[3:3 + tlen].decode("utf-8", "replace")
        class_id, method_id = struct.unpack(">HH", args[3 + tlen:7 + tlen])
        try:
            self.send(method(0, 10, 51))
        except OSError:
            pass
        return {"reply_code": code, "reply_text": text,
                "class_id": class_id, "method_id": method_id}

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
