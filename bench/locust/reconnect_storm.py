"""reconnect-storm: every user loses its connection at once, reconnects and syncs without a gap.

Users form groups of LANTERN_GROUP_SIZE in spawn order within a Locust process (as in
group_fanout.py) and keep, per conversation, the cursor PROTOCOL.md section 9 describes: the
highest seq held without a gap, messages above it buffered. After connecting each user runs the
sync loop ('sync', until `more` is false); the first LANTERN_GROUP_SENDERS members of each group
send stamped texts every LANTERN_SEND_INTERVAL_S ('send'; live copies at other members: 'deliver').

LANTERN_DROP_AT_S after the test start every connected user cuts its TCP connection without a
close frame (the server sees 1006, as after a network failure), reconnects ('reconnect', with
jittered backoff when refused) and syncs from its cursors. Senders reconnect at once and go on
sending; the others wait a random 0 .. LANTERN_RECONNECT_JITTER_MS first, so they miss messages
that only the sync can bring. 'resync' is the time from the drop to caught up (the sync loop done);
it fails when messages are still missing then: `gaps` counts them (seqs below the highest one
the user holds that it never got, live or by sync). A `lag` event or a gap in live delivery
also runs the sync loop, as a client must.

Headline: 'resync', in resyncs/s, and its latency.

Environment (besides lantern_env.py's LANTERN_URL, LANTERN_JWT_SECRET, LANTERN_JWT_AUDIENCE,
LANTERN_USER_PREFIX, LANTERN_TIMEOUT_S, and lantern_slo.py's LANTERN_SLO, LANTERN_RESULTS_DIR):
  LANTERN_GROUP_SIZE          members per group (default 10)
  LANTERN_GROUP_SENDERS       senders per group (default 1)
  LANTERN_SEND_INTERVAL_S     between two sends of one sender (default 0.5)
  LANTERN_PAYLOAD_BYTES       filler after the stamp in each text (default 32)
  LANTERN_DROP_AT_S           test start -> the storm (default: 40% of -t, or 30 without -t);
                              users spawned later take no part in it
  LANTERN_RECONNECT_JITTER_MS others' reconnects spread over 0 .. this (default 500, the first step of
                              section 10.5's backoff); 'resync' includes this wait, 'reconnect'
                              and 'sync' time the server's part
  LANTERN_SYNC_LIMIT          sync page size (default 0: the server's syncPageDefault)
  LANTERN_USERS_PER_CALL      users per group.create / group.add (default 100)
  LANTERN_SETUP_TIMEOUT_S     how long a sender waits for its group (default 60)

Figures for LANTERN_SLO besides the common ones (lantern_slo.py):
  resyncs           users caught up after the drop (as resync_count)
  gaps              messages missing after the resyncs (must be 0: gaps<=0)
  resynced_msgs     messages the resyncs brought that the user did not hold
  live_gaps         gaps seen in live delivery (each repaired by a sync)
  unreconnected     users that could not reconnect (reconnect_failures: failed attempts)
  late_users        users spawned after the storm moment
  lag               `lag` events
  resent            sends the drop cut, sent again with their cid after the resync ('resend')
  resync_p99_ms (= p99_ms), reconnect_p99_ms, sync_p99_ms, deliver_p99_ms
"""

import random
import time
import uuid

import gevent
from gevent.lock import Semaphore
from locust import constant_pacing, events, task

import lantern_env
import lantern_slo
from lantern_client import LanternClosed, elapsed_ms, report
from lantern_setup import Groups, LanternUser, report_delivery, stamped_text

RECONNECT_ATTEMPTS = 10


def read_settings():
    target = lantern_env.read_target()
    size, senders = lantern_env.read_group_shape()
    return (target, size, senders,
            lantern_env.env_float('LANTERN_SEND_INTERVAL_S', 0.5, minimum=0.001),
            lantern_env.env_int('LANTERN_PAYLOAD_BYTES', 32),
            lantern_env.env_float('LANTERN_DROP_AT_S', -1.0, minimum=-1.0),
            lantern_env.env_int('LANTERN_RECONNECT_JITTER_MS', 500),
            lantern_env.env_int('LANTERN_SYNC_LIMIT', 0),
            lantern_env.env_int('LANTERN_USERS_PER_CALL', 100, minimum=1),
            lantern_env.env_float('LANTERN_SETUP_TIMEOUT_S', 60.0, minimum=0.1))


(TARGET, GROUP_SIZE, SENDERS, SEND_INTERVAL_S, PAYLOAD_BYTES, DROP_AT_S, JITTER_MS, SYNC_LIMIT, USERS_PER_CALL,
 SETUP_TIMEOUT_S) = lantern_env.exit_on_setting_error(read_settings)
FILLER = 'x' * PAYLOAD_BYTES
GROUPS = Groups(TARGET, GROUP_SIZE, USERS_PER_CALL, 'locust reconnect storm')

RUN = lantern_slo.install('reconnect-storm', f'Reconnect storm (groups of {GROUP_SIZE}): drop -> reconnected and synced',
                          headline='resync', metric='resyncs/s', derive=lambda f: {'resyncs': f.get('resync_count', 0)})
for name in ('gaps', 'resynced_msgs', 'live_gaps', 'unreconnected', 'late_users', 'lag', 'resent'):
    RUN.add(name, 0)

STORM = {'at': None}


@events.test_start.add_listener
def _schedule_storm(environment, **kw) -> None:
    run_time = getattr(environment.parsed_options, 'run_time', None)
    after = DROP_AT_S if DROP_AT_S >= 0 else (0.4 * run_time if run_time else 30.0)
    STORM['at'] = time.time() + after


class GapError(Exception):
    pass


class Timeline:
    """One user's cursors (highest seq held without a gap, per conversation) and buffered messages above them."""

    def __init__(self):
        self.cursors: dict[str, int] = {}
        self.pending: dict[str, set[int]] = {}

    def start(self, conv: str, joined: int) -> None:
        """A conversation learnt from sync: messages up to `joined` are not visible to this user."""
        if conv not in self.cursors:
            self.cursors[conv] = joined
            self._drain(conv)

    def forget(self, conv: str) -> None:
        self.cursors.pop(conv, None)
        self.pending.pop(conv, None)

    def apply(self, conv: str, seq: int) -> str:
        """'new', 'dup', 'gap' (held above a missing seq) or 'unknown' (a conversation sync has not listed yet)."""
        cursor = self.cursors.get(conv)
        buffered = self.pending.setdefault(conv, set()) if cursor is None or seq > cursor + 1 else None
        if cursor is None:
            buffered.add(seq)
            return 'unknown'
        if seq <= cursor or (buffered is not None and seq in buffered):
            return 'dup'
        if buffered is not None:
            buffered.add(seq)
            return 'gap'
        self.cursors[conv] = seq
        self._drain(conv)
        return 'new'

    def _drain(self, conv: str) -> None:
        buffered = self.pending.get(conv)
        if not buffered:
            return
        cursor = self.cursors[conv]
        buffered.difference_update([s for s in buffered if s <= cursor])
        while cursor + 1 in buffered:
            cursor += 1
            buffered.remove(cursor)
        self.cursors[conv] = cursor
        if not buffered:
            del self.pending[conv]

    def holes(self) -> int:
        """Messages missing below the highest seq held, over the conversations this user knows."""
        return sum(max(b) - self.cursors[c] - len(b) for c, b in self.pending.items() if b and c in self.cursors)

    def out_of_step(self) -> bool:
        return bool(self.pending)


class ReconnectingMember(LanternUser):
    target = TARGET
    wait_time = constant_pacing(SEND_INTERVAL_S)

    def on_start(self) -> None:
        self.conv = None
        self.timeline = Timeline()
        self.sync_lock = Semaphore()
        self.resyncing = False
        self.repair: gevent.Greenlet | None = None
        self.storm_greenlet: gevent.Greenlet | None = None
        self.cid_prefix = f'{uuid.uuid4().hex[:12]}-'
        self.sent = 0
        self.outbox: list[dict] = []
        group_no, position = GROUPS.group_of(self.index), GROUPS.position(self.index)
        self.sender = position < SENDERS
        try:
            self.open_client(on_event=self.on_event)
            self.sync_all()
            if position == 0:
                self.conv = GROUPS.create(self.client, group_no)
            elif position < SENDERS:
                self.conv = GROUPS.wait(group_no, SETUP_TIMEOUT_S)
        except Exception as err:
            self.setup_failed(f'group {group_no}', err)
        delay = STORM['at'] - time.time() if STORM['at'] is not None else -1
        if delay > 0:
            self.storm_greenlet = gevent.spawn_later(delay, self.storm)
        else:
            RUN.add('late_users')

    def on_event(self, frame: dict) -> None:
        t = frame.get('t')
        if t == 'msg':
            m = frame.get('m') or {}
            if not isinstance(m.get('conv'), str) or not isinstance(m.get('seq'), int):
                return
            report_delivery(self.environment, self.user_id, frame)
            state = self.timeline.apply(m['conv'], m['seq'])
            if state == 'gap' and not self.resyncing:
                RUN.add('live_gaps')
            if state in ('gap', 'unknown'):
                self.repair_soon()
        elif t == 'lag':
            RUN.add('lag')
            self.repair_soon()

    def repair_soon(self) -> None:
        """Runs the sync loop outside the reader greenlet, once at a time (a storm's resync covers it too)."""
        if self.resyncing or (self.repair is not None and not self.repair.ready()):
            return

        def repair():
            try:
                self.sync_all()
            except Exception:
                pass  # reported as a failed 'sync'; the next gap or lag tries again
        self.repair = gevent.spawn(repair)

    def sync_all(self) -> int:
        """The sync loop of PROTOCOL.md section 9.2, from this user's cursors until `more` is false;
        returns how many messages it brought that the user did not hold."""
        brought = 0
        with self.sync_lock:
            while True:
                params = {'since': dict(self.timeline.cursors)}
                if SYNC_LIMIT > 0:
                    params['limit'] = SYNC_LIMIT
                page = self.request('sync', params)
                for info in page.get('convs') or []:
                    self.timeline.start(info['conv'], info.get('joined', 0))
                for m in page.get('msgs') or []:
                    if self.timeline.apply(m['conv'], m['seq']) == 'new':
                        brought += 1
                for conv in page.get('removed') or []:
                    self.timeline.forget(conv)
                if not page.get('more'):
                    return brought

    def storm(self) -> None:
        if self.client is None or not self.client.connected:
            return
        started = time.perf_counter()
        self.resyncing = True
        try:
            self.client.drop()
            if not self.reconnect():
                RUN.add('unreconnected')
                report(self.environment, 'resync', elapsed_ms(started), 0, ConnectionError(f'{self.user_id}: could not reconnect'))
                return
            try:
                brought = self.sync_all()
            except Exception as err:
                report(self.environment, 'resync', elapsed_ms(started), 0, err)
                return
        finally:
            self.resyncing = False
        # Sends the drop cut go again with their cid: stored once whether or not they had been (`dup`).
        outbox, self.outbox = self.outbox, []
        for params in outbox:
            RUN.add('resent')
            self.send_once(params, 'resend')
        holes = self.timeline.holes()
        RUN.add('resynced_msgs', brought)
        RUN.add('gaps', holes)
        report(self.environment, 'resync', elapsed_ms(started), brought,
               GapError(f'{self.user_id}: {holes} message(s) missing after the resync') if holes else None)
        if self.timeline.out_of_step():
            self.repair_soon()

    def reconnect(self) -> bool:
        """Jittered exponential backoff (PROTOCOL.md section 10.5), starting within the storm's jitter."""
        if not self.sender:
            gevent.sleep(random.uniform(0, JITTER_MS / 1000))
        for attempt in range(RECONNECT_ATTEMPTS):
            try:
                self.open_client(on_event=self.on_event, name='reconnect')
                return True
            except Exception:
                gevent.sleep(random.uniform(0, min(30.0, 0.5 * 2 ** attempt)))  # reported as a failed 'reconnect'
        return False

    @task
    def send(self) -> None:
        if self.conv is None or self.client is None or not self.client.connected or self.resyncing:
            return
        self.sent += 1
        self.send_once({'conv': self.conv, 'cid': f'{self.cid_prefix}{self.sent}', 'kind': 'text',
                        'body': {'text': stamped_text(FILLER)}}, 'send')

    def send_once(self, params: dict, name: str) -> None:
        started = time.perf_counter()
        try:
            self.request('send', params, name=None)
        except LanternClosed as err:
            if self.resyncing:  # cut by the drop: the outbox resends it, same cid, once reconnected
                self.outbox.append(params)
                return
            report(self.environment, name, elapsed_ms(started), 0, err)
            return
        except Exception as err:
            report(self.environment, name, elapsed_ms(started), 0, err)
            return
        report(self.environment, name, elapsed_ms(started), 0)

    def on_stop(self) -> None:
        for g in (self.storm_greenlet, self.repair):
            if g is not None:
                g.kill(block=False)
        super().on_stop()
