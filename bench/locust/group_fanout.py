"""group-fanout: group message fan-out, send -> every other member's `msg` event.

Users form groups of LANTERN_GROUP_SIZE in spawn order within a Locust process (users
k*size ... k*size+size-1). The first member creates the group naming the others (`group.create`,
then `group.add` in chunks of LANTERN_USERS_PER_CALL; members need not be online to be added).
The first LANTERN_GROUP_SENDERS members of each group send a text message to it every
LANTERN_SEND_INTERVAL_S, stamped with its send time; every other member that holds a connection
reports each copy as 'deliver' = its clock - the stamp. The sender's send -> ack is 'send'.
Give a multiple of the group size as users (per worker): the last group's missing members are
never online, so their copies are stored but not delivered.

Headline: 'deliver', in deliveries/s (copies reaching members), and its latency.

Environment (besides lantern_env.py's LANTERN_URL, LANTERN_JWT_SECRET, LANTERN_JWT_AUDIENCE,
LANTERN_USER_PREFIX, LANTERN_TIMEOUT_S, and lantern_slo.py's LANTERN_SLO, LANTERN_RESULTS_DIR):
  LANTERN_GROUP_SIZE        members per group, owner included (default 10; e.g. 10, 100, 500;
                            the server's maxGroupMembers must allow it)
  LANTERN_GROUP_SENDERS     senders per group (default 1)
  LANTERN_SEND_INTERVAL_S   between two sends of one sender (default 1)
  LANTERN_PAYLOAD_BYTES     filler after the stamp in each text (default 32)
  LANTERN_USERS_PER_CALL    users per group.create / group.add (the server's maxUsersPerCall, default 100)
  LANTERN_SETUP_TIMEOUT_S   how long a sender waits for its group (default 60)

Figures for LANTERN_SLO besides the common ones (lantern_slo.py):
  groups            groups created
  deliveries        'deliver' events (as deliver_count)
  send_p99_ms       send -> ack;  deliver_p99_ms is p99_ms
  lag               `lag` events (the server dropped events for a slow reader)
"""

import uuid

from locust import constant_pacing, task

import lantern_env
import lantern_slo
from lantern_setup import Groups, LanternUser, report_delivery


def read_settings():
    target = lantern_env.read_target()
    size, senders = lantern_env.read_group_shape()
    return (target, size, senders,
            lantern_env.env_float('LANTERN_SEND_INTERVAL_S', 1.0, minimum=0.001),
            lantern_env.env_int('LANTERN_PAYLOAD_BYTES', 32),
            lantern_env.env_int('LANTERN_USERS_PER_CALL', 100, minimum=1),
            lantern_env.env_float('LANTERN_SETUP_TIMEOUT_S', 60.0, minimum=0.1))


TARGET, GROUP_SIZE, SENDERS, SEND_INTERVAL_S, PAYLOAD_BYTES, USERS_PER_CALL, SETUP_TIMEOUT_S = \
    lantern_env.exit_on_setting_error(read_settings)
FILLER = 'x' * PAYLOAD_BYTES
GROUPS = Groups(TARGET, GROUP_SIZE, USERS_PER_CALL, 'locust fan-out')

RUN = lantern_slo.install('group-fanout', f'Group fan-out ({GROUP_SIZE} members): send -> delivered to each member',
                          headline='deliver', metric='deliveries/s', derive=lambda f: {'deliveries': f.get('deliver_count', 0)})
for name in ('groups', 'lag'):
    RUN.add(name, 0)


class GroupMemberUser(LanternUser):
    target = TARGET
    wait_time = constant_pacing(SEND_INTERVAL_S)

    def on_start(self) -> None:
        self.conv = None
        self.group_no = GROUPS.group_of(self.index)
        position = GROUPS.position(self.index)
        self.cid_prefix = f'{uuid.uuid4().hex[:12]}-'
        self.sent = 0
        try:
            self.open_client(on_event=self.on_event)
            if position == 0:
                self.conv = GROUPS.create(self.client, self.group_no)
                RUN.add('groups')
            elif position < SENDERS:
                self.conv = GROUPS.wait(self.group_no, SETUP_TIMEOUT_S)
        except Exception as err:
            self.setup_failed(f'group {self.group_no}', err)
            self.conv = None

    def on_event(self, frame: dict) -> None:
        t = frame.get('t')
        if t == 'msg':
            report_delivery(self.environment, self.user_id, frame)
        elif t == 'lag':
            RUN.add('lag')

    @task
    def send(self) -> None:
        # Members that do not send have no conv here: they only receive.
        if self.conv is None or not self.client.connected:
            return
        self.sent += 1
        self.send_stamped(self.conv, f'{self.cid_prefix}{self.sent}', FILLER)
