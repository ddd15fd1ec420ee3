"""red-envelope: red envelopes in groups, card -> grab answered, and the money checked.

Users form groups of LANTERN_GROUP_SIZE in spawn order within a Locust process; the first member
creates the group (as in group_fanout.py). The first LANTERN_ENVELOPE_SENDERS members of each
group are topped up through the admin HTTP API (`POST /admin/wallet/topup`, timed as HTTP
'topup') and send an envelope of LANTERN_ENVELOPE_CENTS in LANTERN_ENVELOPE_SHARES shares every
LANTERN_ENVELOPE_INTERVAL_S ('envelope.send'). Every member online, senders included, grabs
each envelope as soon as its card (`msg` of kind `envelope`) arrives: 'grab' is
`envelope.grab` -> its answer, whatever the outcome.

Checked from the answers (per envelope, in the process that saw its card): the cents members were
told `grabbed` never sum above the envelope's total, no share is paid beyond its count, and no
member is told `grabbed` twice for one envelope.

Headline: 'grab', in grabs/s (answers of any outcome), and its latency.

Environment (besides lantern_env.py's LANTERN_URL, LANTERN_JWT_SECRET, LANTERN_JWT_AUDIENCE,
LANTERN_USER_PREFIX, LANTERN_TIMEOUT_S, LANTERN_ADMIN_URL, LANTERN_ADMIN_TOKEN (required), and
lantern_slo.py's LANTERN_SLO, LANTERN_RESULTS_DIR):
  LANTERN_GROUP_SIZE            members per group (default 10)
  LANTERN_ENVELOPE_SENDERS      senders per group (default 1)
  LANTERN_ENVELOPE_SHARES       shares per envelope (default: half the group, at most 10, so some
                                grabs find it `empty`, as in a busy group)
  LANTERN_ENVELOPE_CENTS        total per envelope in cents (default 1000; the server's envelopeMaxTotal bounds it)
  LANTERN_ENVELOPE_MODE         lucky or equal (default lucky)
  LANTERN_ENVELOPE_INTERVAL_S   between two envelopes of one sender (default 1)
  LANTERN_TOPUP_CENTS           each sender's top-up (default 10000000; the server's topupMaxAmount bounds it)
  LANTERN_USERS_PER_CALL        users per group.create / group.add (default 100)
  LANTERN_SETUP_TIMEOUT_S       how long a sender waits for its group (default 60)

Figures for LANTERN_SLO besides the common ones (lantern_slo.py):
  envelopes         envelopes sent (answered)
  grabbed already empty expired    grab answers by outcome
  grab_errors       grabs answered with an error (or none)
  grabbed_cents     cents members were told they grabbed
  overpaid          cents told `grabbed` above envelopes' totals (must be 0: overpaid<=0)
  overclaimed       `grabbed` answers beyond envelopes' share counts (must be 0)
  duplicate_grabs   members told `grabbed` twice for one envelope (must be 0)
  envelope_send_p99_ms, grab_p99_ms (= p99_ms)
"""

import itertools

from gevent.pool import Group
from locust import constant_pacing, task

import lantern_env
import lantern_slo
from lantern_setup import Groups, LanternUser, top_up


def read_settings():
    target = lantern_env.read_target(admin=True)
    size = lantern_env.env_int('LANTERN_GROUP_SIZE', 10, minimum=2)
    senders = lantern_env.env_int('LANTERN_ENVELOPE_SENDERS', 1, minimum=1)
    shares = lantern_env.env_int('LANTERN_ENVELOPE_SHARES', max(1, min(size // 2, 10)), minimum=1)
    cents = lantern_env.env_int('LANTERN_ENVELOPE_CENTS', 1000, minimum=1)
    mode = lantern_env.env_str('LANTERN_ENVELOPE_MODE', 'lucky')
    if senders > size:
        raise lantern_env.SettingError(f'LANTERN_ENVELOPE_SENDERS ({senders}) exceeds LANTERN_GROUP_SIZE ({size})')
    if shares > size:
        raise lantern_env.SettingError(f'LANTERN_ENVELOPE_SHARES ({shares}) exceeds LANTERN_GROUP_SIZE ({size}): shares need members')
    if cents < shares:
        raise lantern_env.SettingError(f'LANTERN_ENVELOPE_CENTS ({cents}) is below LANTERN_ENVELOPE_SHARES ({shares}): every share is at least 1 cent')
    if mode not in ('lucky', 'equal'):
        raise lantern_env.SettingError(f'LANTERN_ENVELOPE_MODE must be lucky or equal, got {mode!r}')
    return (target, size, senders, shares, cents, mode,
            lantern_env.env_float('LANTERN_ENVELOPE_INTERVAL_S', 1.0, minimum=0.001),
            lantern_env.env_int('LANTERN_TOPUP_CENTS', 10_000_000, minimum=1),
            lantern_env.env_int('LANTERN_USERS_PER_CALL', 100, minimum=1),
            lantern_env.env_float('LANTERN_SETUP_TIMEOUT_S', 60.0, minimum=0.1))


(TARGET, GROUP_SIZE, SENDERS, SHARES, ENVELOPE_CENTS, MODE, INTERVAL_S, TOPUP_CENTS, USERS_PER_CALL,
 SETUP_TIMEOUT_S) = lantern_env.exit_on_setting_error(read_settings)
GROUPS = Groups(TARGET, GROUP_SIZE, USERS_PER_CALL, 'locust red envelopes')
GRAB_OUTCOMES = ('grabbed', 'already', 'empty', 'expired')

RUN = lantern_slo.install('red-envelope', f'Red envelopes ({SHARES} shares, groups of {GROUP_SIZE}): card -> grab answered',
                          headline='grab', metric='grabs/s')
for name in ('envelopes', *GRAB_OUTCOMES, 'grab_errors', 'grabbed_cents', 'overpaid', 'overclaimed', 'duplicate_grabs'):
    RUN.add(name, 0)


class EnvelopeTally:
    """What this process's members were told per envelope; counts overpayment as it happens."""

    def __init__(self):
        # envelope id -> {'total', 'count', 'paid', 'users'} (total/count from the card)
        self.envelopes: dict[str, dict] = {}

    def card(self, envelope: str, total, count) -> None:
        self.envelopes.setdefault(envelope, {'total': total, 'count': count, 'paid': 0, 'users': set()})

    def grabbed(self, envelope: str, user: str, amount: int) -> None:
        e = self.envelopes[envelope]
        before_over = max(0, e['paid'] - e['total'])
        before_extra = max(0, len(e['users']) - e['count'])
        if user in e['users']:
            RUN.add('duplicate_grabs')
        e['users'].add(user)
        e['paid'] += amount
        RUN.add('grabbed_cents', amount)
        RUN.add('overpaid', max(0, e['paid'] - e['total']) - before_over)
        RUN.add('overclaimed', max(0, len(e['users']) - e['count']) - before_extra)


TALLY = EnvelopeTally()


class RedEnvelopeUser(LanternUser):
    target = TARGET
    wait_time = constant_pacing(INTERVAL_S)

    def on_start(self) -> None:
        self.conv = None
        self.group_no = GROUPS.group_of(self.index)
        position = GROUPS.position(self.index)
        self.keys = itertools.count(1)
        self.grabs = Group()
        try:
            self.open_client(on_event=self.on_event)
            if position < SENDERS:
                top_up(self.environment, self.target, self.user_id, TOPUP_CENTS)
            if position == 0:
                self.conv = GROUPS.create(self.client, self.group_no)
            elif position < SENDERS:
                self.conv = GROUPS.wait(self.group_no, SETUP_TIMEOUT_S)
        except Exception as err:
            self.setup_failed(f'group {self.group_no}', err)
            self.conv = None

    def on_event(self, frame: dict) -> None:
        if frame.get('t') != 'msg':
            return
        m = frame.get('m') or {}
        body = m.get('body') or {}
        if m.get('kind') != 'envelope' or not isinstance(body.get('envelope'), str):
            return
        TALLY.card(body['envelope'], body.get('total'), body.get('count'))
        self.grabs.spawn(self.grab, body['envelope'])  # not in the reader greenlet: it must keep reading

    def grab(self, envelope: str) -> None:
        try:
            answer = self.request('envelope.grab', {'envelope': envelope}, name='grab')
        except Exception:
            RUN.add('grab_errors')  # reported as a failed 'grab'
            return
        outcome = answer.get('outcome')
        if outcome not in GRAB_OUTCOMES:
            RUN.add('grab_errors')
            return
        RUN.add(outcome)
        if outcome == 'grabbed':
            TALLY.grabbed(envelope, self.user_id, answer.get('amount', 0))

    def on_stop(self) -> None:
        # Grabs in flight get a moment to be answered; what is still open then is left out, not failed.
        self.grabs.join(timeout=self.target.timeout_s / 2)
        self.grabs.kill(block=False)
        super().on_stop()

    @task
    def send_envelope(self) -> None:
        # Members that do not send have no conv here: they only grab.
        if self.conv is None or not self.client.connected:
            return
        try:
            self.request('envelope.send', {'conv': self.conv, 'total': ENVELOPE_CENTS, 'count': SHARES, 'mode': MODE,
                                           'key': f'{self.user_id}-{next(self.keys)}', 'greeting': 'locust'})
        except Exception:
            return  # reported as a failed 'envelope.send'
        RUN.add('envelopes')
