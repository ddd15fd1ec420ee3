"""Setup the scenarios share: user indices, groups formed by their first member, the admin HTTP
API (top-ups, sales), and values made once per run and handed to every Locust worker.

Coordination is per Locust process: user i of a process pairs with i^1, and group k is the
process's users k*size ... k*size+size-1, so pairs and groups never span processes. In a
distributed run (--master/--worker) each worker forms its own pairs and groups from the users it
is given; give each worker a multiple of the pair or group size. A value the whole run shares
(the flash sale) is made once by the master (or the single local process) at test start and sent
to the workers before they spawn users (SharedValue).
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request

import gevent
from gevent.event import AsyncResult
from locust import User, events
from locust.runners import MasterRunner, WorkerRunner

from lantern_client import LanternClient, LanternClosed, elapsed_ms, mint_token, report
from lantern_env import Target

# Spawn order within this process: Locust starts users one after another.
_user_indices = itertools.count()


def next_user_index() -> int:
    return next(_user_indices)


class AdminError(Exception):
    pass


def admin_call(target: Target, path: str, body: dict | None = None, timeout_s: float | None = None) -> dict:
    """POST (with a body) or GET on the admin HTTP API; anything but 200 raises AdminError with the answer."""
    data = None if body is None else json.dumps(body).encode('utf-8')
    req = urllib.request.Request(
        f'{target.admin_url}{path}', data=data, method='GET' if body is None else 'POST',
        headers={'authorization': f'Bearer {target.admin_token}', 'content-type': 'application/json'})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s or target.timeout_s) as res:
            return json.loads(res.read().decode('utf-8'))
    except urllib.error.HTTPError as err:
        raise AdminError(f"{req.get_method()} {path}: {err.code} {err.read().decode('utf-8', 'replace')}") from None
    except urllib.error.URLError as err:
        raise AdminError(f'{req.get_method()} {target.admin_url}{path}: {err.reason}') from None


def top_up(environment, target: Target, user: str, cents: int) -> dict:
    """POST /admin/wallet/topup, idempotent by its key; reported as HTTP 'topup'."""
    started = time.perf_counter()
    try:
        answer = admin_call(target, '/admin/wallet/topup', {'user': user, 'amount': cents, 'key': f'locust-{user}-{cents}'})
    except Exception as err:
        report(environment, 'topup', elapsed_ms(started), 0, err, request_type='HTTP')
        raise
    report(environment, 'topup', elapsed_ms(started), 0, request_type='HTTP')
    return answer


class Groups:
    """Groups of `size` consecutive user indices of this process; the first member creates its group
    (group.create, then group.add in chunks of `per_call`), the others learn its id here."""

    def __init__(self, target: Target, size: int, per_call: int, title: str):
        self.target = target
        self.size = size
        self.per_call = per_call
        self.title = title
        self._convs: dict[int, AsyncResult] = {}

    def group_of(self, index: int) -> int:
        return index // self.size

    def position(self, index: int) -> int:
        return index % self.size

    def members(self, group: int) -> list[str]:
        return [self.target.user_id(group * self.size + j) for j in range(self.size)]

    def _result(self, group: int) -> AsyncResult:
        return self._convs.setdefault(group, AsyncResult())

    def create(self, owner: LanternClient, group: int) -> str:
        """Run by the group's first member. A failure is handed to the waiting members too."""
        result = self._result(group)
        try:
            others = self.members(group)[1:]
            info = owner.request('group.create', {'title': self.title, 'members': others[:self.per_call]}, self.target.timeout_s)
            conv = info['conv']
            for i in range(self.per_call, len(others), self.per_call):
                owner.request('group.add', {'conv': conv, 'users': others[i:i + self.per_call]}, self.target.timeout_s)
        except Exception as err:
            result.set_exception(err)
            raise
        result.set(conv)
        return conv

    def wait(self, group: int, timeout_s: float) -> str:
        """The group's conversation id once its first member created it (raises on timeout or failure)."""
        try:
            return self._result(group).get(timeout=timeout_s)
        except gevent.Timeout:
            raise TimeoutError(f'group {group} was not created within {timeout_s} s (is its first member running?)') from None


class SharedValue:
    """A value made once per run by `produce(environment)` (the master, or the only process) at test
    start and handed to the workers over Locust's messages. Users read it with get()."""

    def __init__(self, name: str, produce):
        self.name = name
        self.produce = produce
        self._value = AsyncResult()
        events.init.add_listener(self._on_init)
        events.test_start.add_listener(self._on_test_start)

    def _on_init(self, environment, **kw) -> None:
        if isinstance(environment.runner, WorkerRunner):
            environment.runner.register_message(self.name, lambda msg, **kw: self._settle(msg.data))

    def _settle(self, data: dict) -> None:
        if 'error' in data:
            self._value.set_exception(RuntimeError(f"{self.name}: {data['error']}"))
        else:
            self._value.set(data['value'])

    def _on_test_start(self, environment, **kw) -> None:
        if isinstance(environment.runner, WorkerRunner):
            return
        try:
            data = {'value': self.produce(environment)}
        except Exception as err:  # the users report it when they ask for the value
            data = {'error': f'{err.__class__.__name__}: {err}'}
        if isinstance(environment.runner, MasterRunner):
            environment.runner.send_message(self.name, data)
        self._settle(data)

    def get(self, timeout_s: float):
        try:
            return self._value.get(timeout=timeout_s)
        except gevent.Timeout:
            raise TimeoutError(f'{self.name} did not arrive within {timeout_s} s') from None


class LanternUser(User):
    """A Locust user holding one Lantern connection: its index in this process, its user id and
    gateway (round-robin), and helpers that report setup failures instead of killing the user."""
    abstract = True
    target: Target
    device = 'locust'

    def __init__(self, environment):
        super().__init__(environment)
        self.index = next_user_index()
        self.user_id = self.target.user_id(self.index)
        self.url = self.target.url_for(self.index)
        self.client: LanternClient | None = None

    def open_client(self, on_event=None, on_close=None, name: str | None = 'connect') -> LanternClient:
        client = LanternClient(self.environment, self.url, self.user_id, self.device, on_event, on_close)
        client.connect(mint_token(self.target.jwt_secret, self.target.audience, self.user_id), self.target.timeout_s, name)
        self.client = client
        return client

    def request(self, type_: str, params: dict | None = None, name: str | None = '') -> dict:
        if self.client is None:
            raise LanternClosed(f'{self.user_id}: {type_} before connecting')
        return self.client.request(type_, params, self.target.timeout_s, name)

    def setup_failed(self, step: str, err: BaseException) -> None:
        """A user whose setup failed idles for the rest of the run; the failure counts once, as the failed
        request, or else as a 'setup' error."""
        if not getattr(err, 'lantern_reported', False):
            report(self.environment, 'setup', 0, 0, RuntimeError(f'{self.user_id}: {step}: {err}'))

    def send_stamped(self, conv: str, cid: str, filler: str) -> None:
        """A text message starting with its send time; a failure is reported as a failed 'send'."""
        try:
            self.request('send', {'conv': conv, 'cid': cid, 'kind': 'text', 'body': {'text': stamped_text(filler)}})
        except Exception:
            pass

    def on_stop(self) -> None:
        if self.client is not None:
            self.client.close()


# ---------------------------------------------------------------- stamped messages

def stamped_text(filler: str) -> str:
    """A text body starting with its send time (epoch ms): receivers subtract it from their own clock,
    so deliveries are timed without the sender keeping anything (generators' clocks must agree)."""
    return f'{time.time() * 1000:.3f} {filler}'


def read_stamp(text) -> float | None:
    if not isinstance(text, str):
        return None
    head = text.split(' ', 1)[0]
    try:
        return float(head)
    except ValueError:
        return None


def report_delivery(environment, own_user: str, frame: dict) -> bool:
    """A `msg` event carrying another user's stamped text is one 'deliver' (send -> this receiver);
    True if it was one. Own copies and notices are not deliveries."""
    m = frame.get('m')
    if not isinstance(m, dict) or m.get('kind') != 'text' or m.get('from') == own_user:
        return False
    stamp = read_stamp((m.get('body') or {}).get('text'))
    if stamp is None:
        report(environment, 'deliver', 0, 0, ValueError(f"{own_user}: a text from {m.get('from')} without a send stamp"))
        return False
    report(environment, 'deliver', max(0.0, time.time() * 1000 - stamp), 0)
    return True
