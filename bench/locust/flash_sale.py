"""flash-sale: a stock-limited sale opening to every user at once, and no unit sold twice.

At test start the master (or the only Locust process) sets up one sale: a merchant user connects
and creates its group (`group.create`, timed as 'setup group.create'), and the sale of
LANTERN_SALE_STOCK units is created through the admin HTTP API (`POST /admin/sales`, timed as
HTTP 'setup sale'), starting LANTERN_SALE_LEAD_MS later; the workers get its id before they
spawn users. Every user connects, waits for the start, and taps buy once: `sale.buy` with one
idempotency key, timed per attempt as 'buy'. Answers are handled as PROTOCOL.md section 6.6 says:
`try_later` and retryable errors (busy, rate_limited, timeout, unavailable) resend the same key
after `retryAfterMs`, with `retry: true` once an attempt may have reached a worker unanswered
(a timeout); `not_open` (a clock ahead of the server's) resends at the start; `reserved`,
`sold_out`, `limit_reached` and `closed` are final. At most LANTERN_SALE_RESENDS resends per buyer.

Headline: 'buy', in attempts/s (answers of any outcome), and its latency.

Environment (besides lantern_env.py's LANTERN_URL, LANTERN_JWT_SECRET, LANTERN_JWT_AUDIENCE,
LANTERN_USER_PREFIX, LANTERN_TIMEOUT_S, LANTERN_ADMIN_URL, LANTERN_ADMIN_TOKEN (required), and
lantern_slo.py's LANTERN_SLO, LANTERN_RESULTS_DIR):
  LANTERN_SALE_STOCK          units for sale (default 100)
  LANTERN_SALE_QUANTITY       units per buy (default 1)
  LANTERN_SALE_PER_USER_LIMIT the sale's perUserLimit (default: the quantity)
  LANTERN_SALE_PRICE          cents per unit (default 9900)
  LANTERN_SALE_LEAD_MS        sale creation -> start (default: the ramp-up, users / spawn rate, + 2000)
  LANTERN_SALE_DURATION_S     start -> end of the sale (default 3600)
  LANTERN_SALE_RESENDS        resends per buyer before it gives up (default 20)
  LANTERN_SETUP_TIMEOUT_S     how long a buyer waits for the sale to be set up (default 60)

Figures for LANTERN_SLO besides the common ones (lantern_slo.py):
  stock             the sale's units
  buyers            users that tapped buy;  answered: of those, with a final answer
  reserved          buyers told `reserved`;  reserved_units: their units
  sold_out limit_reached closed    buyers with that final answer
  try_later         `try_later` answers (each resent);  not_open: `not_open` answers (resent)
  buy_errors        attempts answered with an err frame or not at all
  duplicates        `reserved` answers marked duplicate (a resend that found its earlier reservation)
  oversold          reserved_units - stock when positive, else 0 (must be 0: oversold<=0)
  unanswered        buyers left without a final answer
"""

import math
import time

import gevent
from locust import constant, task

import lantern_env
import lantern_slo
from lantern_client import LanternClient, LanternRequestError, LanternTimeout, elapsed_ms, mint_token, report
from lantern_setup import LanternUser, SharedValue, admin_call


def read_settings():
    target = lantern_env.read_target(admin=True)
    stock = lantern_env.env_int('LANTERN_SALE_STOCK', 100, minimum=1)
    quantity = lantern_env.env_int('LANTERN_SALE_QUANTITY', 1, minimum=1)
    return (target, stock, quantity,
            lantern_env.env_int('LANTERN_SALE_PER_USER_LIMIT', quantity, minimum=1),
            lantern_env.env_int('LANTERN_SALE_PRICE', 9900, minimum=1),
            lantern_env.env_int('LANTERN_SALE_LEAD_MS', -1, minimum=-1),
            lantern_env.env_float('LANTERN_SALE_DURATION_S', 3600.0, minimum=1.0),
            lantern_env.env_int('LANTERN_SALE_RESENDS', 20),
            lantern_env.env_float('LANTERN_SETUP_TIMEOUT_S', 60.0, minimum=0.1))


(TARGET, STOCK, QUANTITY, PER_USER_LIMIT, PRICE, LEAD_MS, DURATION_S, MAX_RESENDS,
 SETUP_TIMEOUT_S) = lantern_env.exit_on_setting_error(read_settings)
FINAL = ('reserved', 'sold_out', 'limit_reached', 'closed')
ERROR_RETRY_S = 0.2


def derive(f: dict) -> dict:
    return {'stock': STOCK,
            'oversold': max(0, f.get('reserved_units', 0) - STOCK),
            'unanswered': max(0, f.get('buyers', 0) - f.get('answered', 0))}


RUN = lantern_slo.install('flash-sale', f'Flash sale ({STOCK} units): every user taps buy at the start', headline='buy',
                          metric='attempts/s', derive=derive)
for name in ('buyers', 'answered', 'reserved_units', *FINAL, 'try_later', 'not_open', 'buy_errors', 'duplicates'):
    RUN.add(name, 0)


def timed(environment, name: str, request_type: str, call):
    started = time.perf_counter()
    try:
        result = call()
    except Exception as err:
        report(environment, name, elapsed_ms(started), 0, err, request_type=request_type)
        raise
    report(environment, name, elapsed_ms(started), 0, request_type=request_type)
    return result


def open_sale(environment) -> dict:
    """The merchant's group and the sale in it; runs once per run (master or local process)."""
    merchant, follower = TARGET.user_id('merchant'), TARGET.user_id('follower')
    client = LanternClient(environment, TARGET.urls[0], merchant, 'locust-merchant')
    client.connect(mint_token(TARGET.jwt_secret, TARGET.audience, merchant), TARGET.timeout_s, 'setup connect')
    try:
        conv = client.request('group.create', {'title': 'locust flash sale', 'members': [follower]}, TARGET.timeout_s,
                              'setup group.create')['conv']
    finally:
        client.close()
    o = environment.parsed_options
    lead_ms = LEAD_MS if LEAD_MS >= 0 else math.ceil(1000 * (o.num_users or 1) / (o.spawn_rate or 1)) + 2000
    start_at = int(time.time() * 1000) + lead_ms
    sale = timed(environment, 'setup sale', 'HTTP', lambda: admin_call(TARGET, '/admin/sales', {
        'merchant': merchant, 'conv': conv, 'item': 'Locust phone, 128 GB', 'price': PRICE, 'stock': STOCK,
        'startAt': start_at, 'endAt': start_at + int(DURATION_S * 1000), 'perUserLimit': PER_USER_LIMIT,
        'key': f'{TARGET.user_prefix}sale'}))
    return {'sale': sale['sale'], 'startAt': sale['startAt']}


SALE = SharedValue('lantern_flash_sale', open_sale)


class BuyerUser(LanternUser):
    target = TARGET
    wait_time = constant(1)  # after its one tap a buyer only holds its connection

    def on_start(self) -> None:
        self.sale = None
        try:
            self.open_client()
            self.sale = SALE.get(SETUP_TIMEOUT_S)
        except Exception as err:
            self.setup_failed('the sale', err)

    @task
    def buy_once(self) -> None:
        if self.sale is None:
            return
        sale, self.sale = self.sale, None
        gevent.sleep(max(0.0, sale['startAt'] / 1000 - time.time()))
        RUN.add('buyers')
        outcome = self.storm(sale)
        if outcome in FINAL:
            RUN.add('answered')
            RUN.add(outcome)

    def storm(self, sale: dict) -> str | None:
        """One tap: the first attempt and its resends, until a final answer (or giving up: None)."""
        params = {'sale': sale['sale'], 'quantity': QUANTITY, 'key': f'{self.user_id}-tap'}
        for _ in range(MAX_RESENDS + 1):
            try:
                answer = self.request('sale.buy', params, name='buy')
            except LanternRequestError as err:
                RUN.add('buy_errors')
                if err.error in ('timeout', 'unavailable'):
                    params['retry'] = True  # the outcome is unknown: a worker must answer the resend
                if not err.retry:
                    return None
                gevent.sleep((err.retry_after_ms or ERROR_RETRY_S * 1000) / 1000)
                continue
            except LanternTimeout:
                RUN.add('buy_errors')
                params['retry'] = True
                continue
            except Exception:
                RUN.add('buy_errors')  # the connection closed: this tap ends unanswered
                return None
            outcome = answer.get('outcome')
            if outcome == 'try_later':  # no worker saw it: the same key again after the advised wait
                RUN.add('try_later')
                gevent.sleep(answer.get('retryAfterMs', ERROR_RETRY_S * 1000) / 1000)
            elif outcome == 'not_open':  # this clock runs ahead of the server's
                RUN.add('not_open')
                gevent.sleep(max(ERROR_RETRY_S / 10, answer.get('startAt', sale['startAt']) / 1000 - time.time()))
            elif outcome == 'reserved':
                RUN.add('reserved_units', (answer.get('order') or {}).get('quantity', QUANTITY))
                if answer.get('duplicate'):
                    RUN.add('duplicates')
                return outcome
            elif outcome in FINAL:
                return outcome
            else:
                RUN.add('buy_errors')
                return None
        return None
