"""A minimal Lantern protocol v1 client for Locust users: connect and hello/welcome, requests
answered by id (with a timeout), an event callback, one reader greenlet per connection, close.

It runs on gevent: Locust monkey-patches the standard library before a locustfile is imported,
so websocket-client's blocking socket calls yield to the other users' greenlets.

Every timed operation goes to Locust's statistics through `report()` (request_type 'WS'):
'connect' (TCP + WebSocket upgrade + hello -> welcome), each request by its type unless named
otherwise, and what the scenarios time themselves ('deliver', 'resync', ...). An unexpected
close is reported as a failed 'closed' event, so it counts in the error rate.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import socket
import struct
import time
from typing import Callable

import gevent
import websocket
from gevent.event import AsyncResult

from lantern_protocol import LanternFrameError, decode_frame, encode_frame

REQUEST_TYPE = 'WS'


class LanternRequestError(Exception):
    """An `err` reply: `error` is its name (invalid_field, busy, ...), `retry` whether resending can succeed."""

    def __init__(self, request: str, frame: dict):
        self.request = request
        self.code = frame.get('code')
        self.error = str(frame.get('error'))
        self.retry = frame.get('retry') is True
        self.retry_after_ms = frame.get('retryAfterMs')
        super().__init__(f"{request} failed: {self.error} ({self.code}) {frame.get('msg', '')}")


class LanternTimeout(Exception):
    pass


class LanternClosed(ConnectionError):
    pass


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


def mint_token(secret: str, audience: str, user: str, ttl_s: int = 3600) -> str:
    """The HS256 JWT Lantern expects for `user` (PROTOCOL.md section 3), with the standard library."""
    now = int(time.time())
    header = _b64url(json.dumps({'alg': 'HS256'}, separators=(',', ':')).encode())
    claims = {'sub': user, 'aud': audience, 'iat': now, 'exp': now + ttl_s}
    payload = _b64url(json.dumps(claims, separators=(',', ':')).encode())
    signing_input = f'{header}.{payload}'.encode('ascii')
    signature = hmac.new(secret.encode('utf-8'), signing_input, hashlib.sha256).digest()
    return f'{header}.{payload}.{_b64url(signature)}'


def report(environment, name: str, response_time_ms: float, length: int = 0, exception: BaseException | None = None,
           request_type: str = REQUEST_TYPE) -> None:
    """One timed operation into Locust's statistics (names are unique across request types). A
    reported exception is marked, so a caller that catches it later does not count it twice."""
    if exception is not None:
        exception.lantern_reported = True
    environment.events.request.fire(
        request_type=request_type, name=name, response_time=response_time_ms, response_length=length,
        exception=exception, context={},
    )


def elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


class LanternClient:
    """One connection of one user. `on_event(frame)` gets every frame that answers no request()
    (events); it runs in the reader greenlet, so it must not block (spawn a greenlet for follow-up
    requests)."""

    def __init__(self, environment, url: str, user: str, device: str = 'locust',
                 on_event: Callable[[dict], None] | None = None,
                 on_close: Callable[[str], None] | None = None):
        self.environment = environment
        self.url = url
        self.user = user
        self.device = device
        self.on_event = on_event or (lambda frame: None)
        self.on_close = on_close or (lambda description: None)
        self.welcome: dict | None = None
        self.close_code: int | None = None
        self._ws: websocket.WebSocket | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, AsyncResult]] = {}
        self._reader: gevent.Greenlet | None = None
        self._closing = False

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._ws.connected and not self._closing

    def connect(self, token: str, timeout_s: float = 10.0, name: str | None = 'connect') -> dict:
        """Opens the socket and completes hello/welcome; reported as `name` (None: not reported)."""
        started = time.perf_counter()
        try:
            welcome = self._handshake(token, timeout_s)
        except Exception as err:
            self._discard()
            if name:
                report(self.environment, name, elapsed_ms(started), 0, err)
            raise
        if name:
            report(self.environment, name, elapsed_ms(started), 0)
        return welcome

    def _handshake(self, token: str, timeout_s: float) -> dict:
        self._closing = False
        self.close_code = None
        ws = websocket.create_connection(self.url, timeout=timeout_s, enable_multithread=True, skip_utf8_validation=True)
        self._ws = ws
        hello_id = next(self._ids)
        ws.send_bytes(encode_frame({'t': 'hello', 'id': hello_id, 'v': [1], 'token': token, 'device': self.device, 'client': 'lantern-locust'}))
        deadline = time.monotonic() + timeout_s
        while True:
            ws.settimeout(max(0.001, deadline - time.monotonic()))
            opcode, data = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = struct.unpack('!H', data[:2])[0] if len(data) >= 2 else None
                raise LanternClosed(f'{self.user}: closed {code} {data[2:].decode("utf-8", "replace")} during hello')
            frame = decode_frame(data)
            if frame.get('t') == 'welcome' and frame.get('id') == hello_id:
                break
            if frame.get('t') == 'err':
                raise LanternRequestError('hello', frame)
        ws.settimeout(None)
        self.welcome = frame
        self._reader = gevent.spawn(self._read_loop, ws)
        return frame

    def request(self, type_: str, params: dict | None = None, timeout_s: float = 10.0, name: str | None = '') -> dict:
        """Sends a request and waits for its `res` data; raises LanternRequestError, LanternTimeout or
        LanternClosed. Reported as `name` ('' : the request type; None: not reported)."""
        started = time.perf_counter()
        label = type_ if name == '' else name
        try:
            result = self._exchange(type_, params or {}, timeout_s)
        except Exception as err:
            if label:
                report(self.environment, label, elapsed_ms(started), 0, err)
            raise
        if label:
            report(self.environment, label, elapsed_ms(started), result[1])
        return result[0]

    def _exchange(self, type_: str, params: dict, timeout_s: float) -> tuple[dict, int]:
        if not self.connected:
            raise LanternClosed(f'{self.user}: {type_} on a closed connection')
        request_id = next(self._ids)
        waiter = AsyncResult()
        self._pending[request_id] = (type_, waiter)
        try:
            self._ws.send_bytes(encode_frame({**params, 't': type_, 'id': request_id}))
            frame, size = waiter.get(timeout=timeout_s)
        except gevent.Timeout:
            raise LanternTimeout(f'{self.user}: {type_} unanswered after {timeout_s} s') from None
        except (websocket.WebSocketException, OSError) as err:
            raise LanternClosed(f'{self.user}: {type_}: {err}') from None
        finally:
            self._pending.pop(request_id, None)
        if frame.get('t') == 'err':
            raise LanternRequestError(type_, frame)
        return frame.get('data') or {}, size

    def _read_loop(self, ws: websocket.WebSocket) -> None:
        description = 'closed'
        try:
            while True:
                opcode, data = ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    self.close_code = struct.unpack('!H', data[:2])[0] if len(data) >= 2 else 1005
                    description = f'closed {self.close_code} {data[2:].decode("utf-8", "replace")}'.rstrip()
                    break
                if opcode != websocket.ABNF.OPCODE_BINARY:
                    self._unexpected(f'a non-binary message (opcode {opcode})', len(data))
                    continue
                try:
                    frame = decode_frame(data)
                except LanternFrameError as err:
                    self._unexpected(f'an undecodable frame: {err}', len(data))
                    continue
                if frame.get('t') in ('res', 'err'):
                    pending = self._pending.get(frame.get('id'))
                    if pending is not None:
                        pending[1].set((frame, len(data)))
                        continue
                self.on_event(frame)
        except (websocket.WebSocketException, OSError) as err:
            self.close_code = self.close_code or 1006
            description = f'closed abnormally ({err.__class__.__name__}: {err})'
        finally:
            # close() and drop() discard the socket themselves; a new connect() may already own _ws.
            intended = self._closing or self._ws is not ws
            if self._ws is ws:
                self._discard()
            for type_, waiter in list(self._pending.values()):
                waiter.set_exception(LanternClosed(f'{self.user}: {type_} unanswered: {description}'))
            if not intended:
                report(self.environment, 'closed', 0, 0, LanternClosed(f'{self.user}: {description}'))
                self.on_close(description)

    def _unexpected(self, what: str, size: int) -> None:
        report(self.environment, 'bad frame', 0, size, LanternFrameError(f'{self.user}: the server sent {what}'))

    def close(self, timeout_s: float = 2.0) -> None:
        """Closes with 1000 and waits (bounded) for the server's close frame."""
        ws = self._ws
        self._closing = True
        if ws is None:
            return
        try:
            ws.send_close(websocket.STATUS_NORMAL)
        except (websocket.WebSocketException, OSError):
            pass  # already gone: nothing to close politely
        if self._reader is not None and not self._reader.ready():
            self._reader.join(timeout=timeout_s)
        self._discard()

    def drop(self) -> None:
        """Cuts the TCP connection without a close frame, as a network failure does (the server sees 1006)."""
        ws = self._ws
        self._closing = True
        if ws is not None and ws.sock is not None:
            try:
                ws.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already cut
        if self._reader is not None:
            self._reader.join(timeout=2.0)
        self._discard()

    def _discard(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            ws.shutdown()
