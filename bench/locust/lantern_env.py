"""The LANTERN_* environment of a Locust scenario: read once, checked, and remembered for the
results file (bench/locust/lantern_slo.py writes every value a scenario read under `settings`,
secrets left out).

Common to every scenario:
  LANTERN_URL            ws(s) URL(s) of the gateways, comma-separated (default ws://127.0.0.1:8080/ws);
                         the users are spread over them round-robin by their index
  LANTERN_JWT_SECRET     HS256 secret the tokens are minted with (required; a test deployment's)
  LANTERN_JWT_AUDIENCE   token audience (default lantern)
  LANTERN_USER_PREFIX    start of every user id (default lc); each Locust process adds a random tag,
                         so every run, and every worker process (--processes, --worker), has users
                         of its own
  LANTERN_TIMEOUT_S      bound on a connect or a request (default 10)
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

SECRET_NAMES = frozenset(('LANTERN_JWT_SECRET', 'LANTERN_ADMIN_TOKEN'))

# name -> value in effect (defaults included), in the order read; secrets are never stored here.
_read: dict[str, object] = {}


class SettingError(ValueError):
    pass


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None or value.strip() == '' else value.strip()


def env_str(name: str, default: str | None = None, required: bool = False) -> str | None:
    value = _raw(name)
    if value is None:
        if required:
            raise SettingError(f'{name} is required')
        value = default
    if name not in SECRET_NAMES:
        _read[name] = value
    return value


def env_int(name: str, default: int, minimum: int = 0) -> int:
    text = _raw(name)
    try:
        value = default if text is None else int(text)
    except ValueError:
        raise SettingError(f'{name} must be an integer, got {text!r}') from None
    if value < minimum:
        raise SettingError(f'{name} must be at least {minimum}, got {value}')
    _read[name] = value
    return value


def env_float(name: str, default: float, minimum: float = 0.0) -> float:
    text = _raw(name)
    try:
        value = default if text is None else float(text)
    except ValueError:
        raise SettingError(f'{name} must be a number, got {text!r}') from None
    if not value >= minimum:
        raise SettingError(f'{name} must be at least {minimum}, got {value}')
    _read[name] = value
    return value


def read_group_shape() -> tuple[int, int]:
    """LANTERN_GROUP_SIZE and LANTERN_GROUP_SENDERS (the first members of each group send)."""
    size = env_int('LANTERN_GROUP_SIZE', 10, minimum=2)
    senders = env_int('LANTERN_GROUP_SENDERS', 1, minimum=1)
    if senders > size:
        raise SettingError(f'LANTERN_GROUP_SENDERS ({senders}) exceeds LANTERN_GROUP_SIZE ({size})')
    return size, senders


def settings_read() -> dict[str, object]:
    """Every LANTERN_* setting read so far with the value in effect, secrets excepted."""
    return dict(_read)


def exit_on_setting_error(read):
    """Runs a locustfile's settings reader; a bad setting ends Locust with the message (exit code 1)."""
    try:
        return read()
    except SettingError as err:
        sys.exit(f'lantern: {err}')


def http_base(ws_url: str) -> str:
    """The gateway's HTTP origin behind a WebSocket URL (ws -> http, wss -> https)."""
    parts = urlsplit(ws_url)
    scheme = {'ws': 'http', 'wss': 'https'}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, '', '', ''))


_process_tag = {'pid': -1, 'tag': ''}


def process_tag() -> str:
    """Random per process, made after any fork: Locust's --processes forks after the locustfile is imported."""
    if _process_tag['pid'] != os.getpid():
        _process_tag.update(pid=os.getpid(), tag=secrets.token_hex(3))
    return _process_tag['tag']


@dataclass(frozen=True)
class Target:
    urls: tuple[str, ...]
    jwt_secret: str
    audience: str
    prefix: str
    timeout_s: float
    admin_url: str | None = None
    admin_token: str | None = None

    def url_for(self, index: int) -> str:
        return self.urls[index % len(self.urls)]

    @property
    def user_prefix(self) -> str:
        """LANTERN_USER_PREFIX and this process's tag: a run never meets an earlier run's contacts and groups."""
        return f'{self.prefix}{process_tag()}-'

    def user_id(self, index) -> str:
        return f'{self.user_prefix}{index}'


def read_target(admin: bool = False) -> Target:
    """The common settings; `admin` adds LANTERN_ADMIN_URL (default: the first gateway) and LANTERN_ADMIN_TOKEN."""
    urls = tuple(u.strip() for u in env_str('LANTERN_URL', 'ws://127.0.0.1:8080/ws').split(',') if u.strip())
    for url in urls:
        if urlsplit(url).scheme not in ('ws', 'wss'):
            raise SettingError(f'LANTERN_URL: {url!r} is not a ws:// or wss:// URL')
    if not urls:
        raise SettingError('LANTERN_URL names no gateway')
    secret = env_str('LANTERN_JWT_SECRET', required=True)
    audience = env_str('LANTERN_JWT_AUDIENCE', 'lantern')
    prefix = env_str('LANTERN_USER_PREFIX', 'lc')
    timeout_s = env_float('LANTERN_TIMEOUT_S', 10.0, minimum=0.1)
    if not admin:
        return Target(urls, secret, audience, prefix, timeout_s)
    admin_url = env_str('LANTERN_ADMIN_URL', http_base(urls[0])).rstrip('/')
    admin_token = env_str('LANTERN_ADMIN_TOKEN', required=True)
    return Target(urls, secret, audience, prefix, timeout_s, admin_url, admin_token)
