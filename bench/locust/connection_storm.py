"""connection-storm: how fast a Lantern fleet takes new authenticated sessions, and whether it
keeps them.

Each Locust user opens one WebSocket and completes hello -> welcome, timed as 'connect' (TCP,
WebSocket upgrade, JWT check, welcome), then holds the connection idle, sending a `ping` request
every LANTERN_PING_INTERVAL_S (timed as 'ping'). A user whose connect fails, or whose connection
is closed under it, connects again after LANTERN_RECONNECT_AFTER_S. The spawn rate (-r) is the
storm's arrival rate.

Headline: 'connect', in connects/s, and its latency.

Environment (besides lantern_env.py's LANTERN_URL, LANTERN_JWT_SECRET, LANTERN_JWT_AUDIENCE,
LANTERN_USER_PREFIX, LANTERN_TIMEOUT_S, and lantern_slo.py's LANTERN_SLO, LANTERN_RESULTS_DIR):
  LANTERN_PING_INTERVAL_S     between pings of one idle connection (default 30)
  LANTERN_RECONNECT_AFTER_S   wait before connecting again after a failure (default 1)

Figures for LANTERN_SLO besides the common ones (lantern_slo.py):
  connects          welcomes received
  held              connections still open when the run stopped
  dropped           connections the server closed or lost during the run
  connected         held / users that ever connected (1.0: nobody lost), e.g. connected>=0.99
  connect_p99_ms    (the common per-name figures; here the same as p99_ms), ping_p99_ms
"""

from locust import task

import lantern_env
import lantern_slo
from lantern_setup import LanternUser


def read_settings():
    return (lantern_env.read_target(),
            lantern_env.env_float('LANTERN_PING_INTERVAL_S', 30.0, minimum=0.01),
            lantern_env.env_float('LANTERN_RECONNECT_AFTER_S', 1.0, minimum=0.0))


TARGET, PING_INTERVAL_S, RECONNECT_AFTER_S = lantern_env.exit_on_setting_error(read_settings)


def derive(figures: dict) -> dict:
    users = figures.get('users_connected', 0)
    return {'connected': round(figures.get('held', 0) / users, 6) if users > 0 else None}


RUN = lantern_slo.install('connection-storm', 'Connection storm: WebSocket + hello -> welcome', headline='connect',
                          metric='connects/s', derive=derive)
for name in ('connects', 'users_connected', 'held', 'dropped'):
    RUN.add(name, 0)


class ConnectionStormUser(LanternUser):
    target = TARGET

    def on_start(self) -> None:
        self.ever_connected = False
        self.connect_once()

    def connect_once(self) -> None:
        try:
            self.open_client(on_close=lambda description: RUN.add('dropped'))
        except Exception:
            return  # reported as a failed 'connect'; the next tick tries again
        RUN.add('connects')
        if not self.ever_connected:
            self.ever_connected = True
            RUN.add('users_connected')

    def wait_time(self) -> float:
        return PING_INTERVAL_S if self.client is not None and self.client.connected else RECONNECT_AFTER_S

    @task
    def tick(self) -> None:
        if self.client is None or not self.client.connected:
            self.connect_once()
            return
        try:
            self.request('ping', name='ping')
        except Exception:
            pass  # reported as a failed 'ping'

    def on_stop(self) -> None:
        if self.client is not None and self.client.connected:
            RUN.add('held')
        super().on_stop()
