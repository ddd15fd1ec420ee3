"""chat: one-to-one chat delivery, send -> the peer's `msg` event.

Users pair up in spawn order within a Locust process (user i with i^1). Each connects, asks its
peer to be a contact (`contact.request` both ways: whoever asks second makes both `friend`,
the first learns it from a `contact` event) and opens the direct conversation (`conv.direct`),
as the Node generator does (bench/loadgen/scenarios/chat-1to1.ts). Then every user sends a text
message to its peer every LANTERN_SEND_INTERVAL_S; the text starts with its send time, and the
peer reports 'deliver' = its clock - that stamp (one machine's clock, or NTP-synced generators).
The sender's `send` -> ack (`res`) is timed as 'send'. The two ends of a pair sit on different
gateways when LANTERN_URL names several. Give an even number of users (per worker).

Headline: 'deliver', in deliveries/s, and its latency.

Environment (besides lantern_env.py's LANTERN_URL, LANTERN_JWT_SECRET, LANTERN_JWT_AUDIENCE,
LANTERN_USER_PREFIX, LANTERN_TIMEOUT_S, and lantern_slo.py's LANTERN_SLO, LANTERN_RESULTS_DIR):
  LANTERN_SEND_INTERVAL_S   between two sends of one user (default 1)
  LANTERN_PAYLOAD_BYTES     filler after the stamp in each text (default 32)
  LANTERN_SETUP_TIMEOUT_S   how long a user waits for its peer (default 60)

Figures for LANTERN_SLO besides the common ones (lantern_slo.py):
  pairs             users whose pair was set up (contacts + direct conversation)
  deliveries        'deliver' events (as deliver_count)
  send_p99_ms       send -> ack;  deliver_p99_ms is p99_ms
  lag               `lag` events (the server dropped events for a slow reader)
"""

import uuid

from gevent.event import Event
from locust import constant_pacing, task

import lantern_env
import lantern_slo
from lantern_setup import LanternUser, report_delivery


def read_settings():
    return (lantern_env.read_target(),
            lantern_env.env_float('LANTERN_SEND_INTERVAL_S', 1.0, minimum=0.001),
            lantern_env.env_int('LANTERN_PAYLOAD_BYTES', 32),
            lantern_env.env_float('LANTERN_SETUP_TIMEOUT_S', 60.0, minimum=0.1))


TARGET, SEND_INTERVAL_S, PAYLOAD_BYTES, SETUP_TIMEOUT_S = lantern_env.exit_on_setting_error(read_settings)
FILLER = 'x' * PAYLOAD_BYTES

RUN = lantern_slo.install('chat', 'One-to-one chat: send -> delivered to the peer', headline='deliver',
                          metric='deliveries/s', derive=lambda f: {'deliveries': f.get('deliver_count', 0)})
for name in ('pairs', 'lag'):
    RUN.add(name, 0)


class ChatUser(LanternUser):
    target = TARGET
    wait_time = constant_pacing(SEND_INTERVAL_S)

    def on_start(self) -> None:
        self.conv = None
        self.peer = self.target.user_id(self.index ^ 1)
        self.friend = Event()
        self.cid_prefix = f'{uuid.uuid4().hex[:12]}-'
        self.sent = 0
        try:
            self.open_client(on_event=self.on_event)
            if self.request('contact.request', {'user': self.peer})['state'] != 'friend':
                if not self.friend.wait(timeout=SETUP_TIMEOUT_S):
                    raise TimeoutError(f'{self.peer} did not ask back within {SETUP_TIMEOUT_S} s (odd user count?)')
            self.conv = self.request('conv.direct', {'user': self.peer})['conv']
        except Exception as err:
            self.setup_failed('pairing', err)
            return
        RUN.add('pairs')

    def on_event(self, frame: dict) -> None:
        t = frame.get('t')
        if t == 'msg':
            report_delivery(self.environment, self.user_id, frame)
        elif t == 'contact' and frame.get('user') == self.peer and frame.get('state') == 'friend':
            self.friend.set()
        elif t == 'lag':
            RUN.add('lag')

    @task
    def send(self) -> None:
        if self.conv is None or not self.client.connected:
            return
        self.sent += 1
        self.send_stamped(self.conv, f'{self.cid_prefix}{self.sent}', FILLER)
