"""SLO gates and the results file of a Locust scenario (what k6's thresholds and handleSummary do).

LANTERN_SLO is a comma-separated list of `<metric><op><number>`, ops < <= > >=, exactly as
bench/report/slo.ts parses it (e.g. `p99_ms<250,error_rate<0.01`). A metric the run did not
produce is a breach: a gate that cannot be checked must not pass. Any breach makes Locust exit
with 1, otherwise it exits with 0 (failed requests count only through an `error_rate` gate).

Figures every scenario offers to the gates:
  p50_ms p90_ms p99_ms max_ms  latency of the scenario's headline request name (Locust's
                               percentiles: whole ms below 100 ms, then rounded to 10 and 100 ms)
  rate                         headline events per second: their count over the time from the first
                               to the last of them, at least 1 s (ramp-up and the idle end of a
                               run do not dilute it)
  requests failures            over every request name
  error_rate                   failures / requests over every request name
  <name>_p50_ms _p90_ms _p99_ms _max_ms _rate _count _failures
                               the same for each request name, made identifier-like
                               ('envelope.send' -> envelope_send_p99_ms)
plus the scenario's own counters and derived figures (each locustfile's docstring lists them).

On Locust's `quitting` event (the master or a local run; workers only send their counters) the
results JSON goes to $LANTERN_RESULTS_DIR (default bench/results) as
`locust-<scenario>-<ISO date, ':' and '.' as '-'>.json`, and its path is printed on stdout as
`lantern results: <path>`. Its `summary` follows ScenarioSummary of bench/report/summary.ts.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import locust
from locust import events
from locust.runners import MasterRunner, WorkerRunner

import lantern_env

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.normpath(os.path.join(HERE, '..', '..'))
# [0-9], not \d: JavaScript's \d is ASCII digits only.
EXPRESSION = re.compile(r'^\s*([a-z][a-z0-9_]*)\s*(<=|>=|<|>)\s*(-?[0-9]+(?:\.[0-9]+)?)\s*$')
FIGURES_KEY = 'lantern_figures'


# ---------------------------------------------------------------- thresholds (bench/report/slo.ts)

@dataclass(frozen=True)
class Threshold:
    expression: str
    metric: str
    op: str
    limit: float


def parse_thresholds(spec: str | None) -> list[Threshold]:
    if spec is None or spec.strip() == '':
        return []
    out = []
    for part in spec.split(','):
        m = EXPRESSION.match(part)
        if not m:
            raise ValueError(f'SLO "{part.strip()}" is not <metric><op><number> with op one of < <= > >= (e.g. p99_ms<250)')
        out.append(Threshold(f'{m[1]}{m[2]}{m[3]}', m[1], m[2], float(m[3])))
    return out


def evaluate_thresholds(thresholds: list[Threshold], figures: dict) -> list[dict]:
    results = []
    for t in thresholds:
        v = figures.get(t.metric)
        actual = v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None
        ok = actual is not None and (
            actual < t.limit if t.op == '<' else actual <= t.limit if t.op == '<=' else actual > t.limit if t.op == '>' else actual >= t.limit)
        results.append({'expression': t.expression, 'metric': t.metric, 'actual': actual, 'ok': ok})
    return results


# ---------------------------------------------------------------- figures of a run

def slug(name: str) -> str:
    return re.sub(r'[^a-z0-9]+', '_', name.lower()).strip('_')


def _ms(v) -> float | None:
    return None if v is None else round(float(v), 3)


def entry_figures(entry, span: tuple[float, float] | None) -> dict:
    """Count, failures, rates and latency of one Locust stats entry; `span`: its first and last event's time."""
    n = entry.num_requests
    window = max(span[1] - span[0], 1.0) if span else 0
    # Locust rounds what it keeps (whole ms, then tens and hundreds); a percentile never exceeds the exact max.
    pct = (lambda p: _ms(min(entry.get_response_time_percentile(p), entry.max_response_time))) if n > 0 else (lambda p: None)
    return {
        'count': n,
        'failures': entry.num_failures,
        'rate': round(n / window, 3) if window > 0 else None,
        'rps': round(entry.total_rps, 3),
        'p50_ms': pct(0.5), 'p90_ms': pct(0.9), 'p99_ms': pct(0.99),
        'max_ms': _ms(entry.max_response_time) if n > 0 else None,
        'avg_ms': _ms(entry.avg_response_time) if n > 0 else None,
    }


NO_EVENTS = {'count': 0, 'failures': 0, 'rate': None, 'rps': 0.0, 'p50_ms': None, 'p90_ms': None, 'p99_ms': None, 'max_ms': None, 'avg_ms': None}


class ScenarioRun:
    """A scenario's counters (summed over Locust processes), its gates and its results file.

    `headline` is the request name whose rate and latency are the run's headline, `metric` the
    unit of its rate; `derive(figures)` adds figures computed from the others (e.g. oversold)."""

    def __init__(self, scenario: str, title: str, headline: str, metric: str,
                 derive: Callable[[dict], dict] | None = None):
        self.scenario = scenario
        self.title = title
        self.headline = headline
        self.metric = metric
        self.derive = derive or (lambda figures: {})
        self.counters: dict[str, float] = {}
        self._unsent: dict[str, float] = {}
        # request name -> [first, last] event time (epoch s), for rates over the time events happened
        self.spans: dict[str, list[float]] = {}
        self.started_at: datetime | None = None
        self.workers: int | None = None
        self.thresholds = parse_thresholds(lantern_env.env_str('LANTERN_SLO', ''))
        self.results_dir = lantern_env.env_str('LANTERN_RESULTS_DIR', os.path.join(REPO_ROOT, 'bench', 'results'))
        events.test_start.add_listener(self._on_test_start)
        events.request.add_listener(self._on_request)
        events.report_to_master.add_listener(self._on_report_to_master)
        events.worker_report.add_listener(self._on_worker_report)
        events.quitting.add_listener(self._on_quitting)

    def add(self, name: str, n: float = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n
        self._unsent[name] = self._unsent.get(name, 0) + n

    def count(self, name: str) -> float:
        return self.counters.get(name, 0)

    def _on_request(self, name, **kw) -> None:
        self._stretch(name, time.time(), None)

    def _stretch(self, name: str, first: float, last: float | None) -> None:
        span = self.spans.get(name)
        if span is None:
            self.spans[name] = [first, last if last is not None else first]
        else:
            span[0] = min(span[0], first)
            span[1] = max(span[1], last if last is not None else first)

    # Workers send what they counted since their last report, and their spans; the master adds them up.
    def _on_report_to_master(self, client_id, data, **kw) -> None:
        data[FIGURES_KEY], self._unsent = {'counters': self._unsent, 'spans': self.spans}, {}

    def _on_worker_report(self, client_id, data, **kw) -> None:
        report = data.get(FIGURES_KEY, {})
        for name, n in report.get('counters', {}).items():
            self.counters[name] = self.counters.get(name, 0) + n
        for name, (first, last) in report.get('spans', {}).items():
            self._stretch(name, first, last)

    def _on_test_start(self, environment, **kw) -> None:
        self.started_at = self.started_at or datetime.now(timezone.utc)
        if isinstance(environment.runner, MasterRunner):  # by the end the workers may have left
            self.workers = environment.runner.worker_count

    def figures(self, environment) -> tuple[dict, dict]:
        """(figures for the gates, per-name results) from Locust's statistics and the counters."""
        stats = environment.stats
        results = {name: entry_figures(entry, self.spans.get(name)) for (name, _method), entry in sorted(stats.entries.items())}
        head = results.get(self.headline) or NO_EVENTS
        total = stats.total
        figures: dict = {
            'p50_ms': head['p50_ms'], 'p90_ms': head['p90_ms'], 'p99_ms': head['p99_ms'], 'max_ms': head['max_ms'],
            'rate': head['rate'],
            'requests': total.num_requests,
            'failures': total.num_failures,
            'error_rate': round(total.num_failures / total.num_requests, 6) if total.num_requests > 0 else None,
        }
        for name, r in results.items():
            s = slug(name)
            for key in ('p50_ms', 'p90_ms', 'p99_ms', 'max_ms', 'rate', 'count', 'failures'):
                figures[f'{s}_{key}'] = r[key]
        clash = sorted(set(self.counters) & set(figures))
        if clash:  # a scenario's bug: say so rather than let a counter hide a measured figure
            print(f'lantern: counters {clash} have the names of measured figures; the counters win', file=sys.stderr)
        figures.update(self.counters)
        figures.update(self.derive(figures))
        return figures, results

    def _on_quitting(self, environment, **kw) -> None:
        if isinstance(environment.runner, WorkerRunner):
            return
        try:
            path, body = self.write(environment)
        except Exception as err:  # the run's outcome is unknown without its file: fail it
            print(f'lantern: could not write the results file: {err!r}', file=sys.stderr)
            environment.process_exit_code = 1
            return
        breaches = [t['expression'] for t in body['summary']['thresholds'] if not t['ok']]
        for t in body['summary']['thresholds']:
            print(f"lantern SLO {'ok    ' if t['ok'] else 'BREACH'} {t['expression']} (actual {t['actual']})", file=sys.stderr)
        print(f'lantern results: {path}', flush=True)
        environment.process_exit_code = 1 if breaches else 0

    def write(self, environment) -> tuple[str, dict]:
        figures, results = self.figures(environment)
        thresholds = evaluate_thresholds(self.thresholds, figures)
        date = self.started_at or datetime.now(timezone.utc)
        head = results.get(self.headline)
        row = {'name': 'lantern', 'value': head['rate'] if head else None, 'p99Ms': head['p99_ms'] if head else None}
        if row['value'] is None:
            row['note'] = f"no '{self.headline}' event was recorded"
        body = {
            'version': package_version(),
            'commit': git_commit(),
            'date': iso_date(date),
            'generator': 'locust',
            'machine': {**machine(), **({'locustWorkers': self.workers} if self.workers is not None else {})},
            'settings': {
                'scenario': self.scenario,
                **lantern_env.settings_read(),
                **locust_settings(environment),
            },
            'results': {'requests': results, 'figures': figures},
            'summary': {
                # 'locust-' keeps these apart from the Node generator's scenarios of the same name in BENCHMARKS.md
                'scenario': f'locust-{self.scenario}', 'title': self.title, 'metric': self.metric, 'ceiling': None,
                'rows': [row], 'thresholds': thresholds,
            },
        }
        os.makedirs(self.results_dir, exist_ok=True)
        path = os.path.join(os.path.abspath(self.results_dir), f"locust-{self.scenario}-{re.sub(r'[:.]', '-', iso_date(date))}.json")
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(body, f, indent=2)
            f.write('\n')
        return path, body


def install(scenario: str, title: str, headline: str, metric: str, derive: Callable[[dict], dict] | None = None) -> ScenarioRun:
    """A locustfile's ScenarioRun; a malformed LANTERN_SLO ends Locust at once with the message."""
    try:
        return ScenarioRun(scenario, title, headline, metric, derive)
    except ValueError as err:
        sys.exit(f'lantern: LANTERN_SLO: {err}')


# ---------------------------------------------------------------- what ran, where

def iso_date(d: datetime) -> str:
    """As JavaScript's toISOString: 2026-12-02T01:18:13.271Z."""
    return d.astimezone(timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.') + f'{d.microsecond // 1000:03d}Z'


def package_version() -> str:
    try:
        with open(os.path.join(REPO_ROOT, 'package.json'), encoding='utf-8') as f:
            version = json.load(f).get('version')
        return version if isinstance(version, str) else 'unknown'
    except (OSError, ValueError):
        return 'unknown'


def git_commit() -> str:
    try:
        out = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as err:
        print(f'lantern: commit unknown ({err})', file=sys.stderr)
        return 'unknown'
    if out.returncode != 0:
        print(f'lantern: commit unknown ({out.stderr.strip().splitlines()[:1]})', file=sys.stderr)
        return 'unknown'
    return out.stdout.strip()


def _cpu_model() -> str:
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def machine() -> dict:
    try:
        mem = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    except (ValueError, OSError, AttributeError):
        mem = None
    info = {
        'cpus': {'model': _cpu_model(), 'count': os.cpu_count()},
        'memBytes': mem,
        'python': platform.python_version(),
        'locust': locust.__version__,
        'os': f'{platform.system()} {platform.release()} {platform.machine()}',
        # Other work on the machine skews every figure; a load average well above 0 says so.
        'loadAvg1m': round(os.getloadavg()[0], 2) if hasattr(os, 'getloadavg') else None,
    }
    return info


def locust_settings(environment) -> dict:
    o = environment.parsed_options
    return {
        'users': getattr(o, 'num_users', None),
        'spawnRate': getattr(o, 'spawn_rate', None),
        'runTimeSec': getattr(o, 'run_time', None),
        'stopTimeoutSec': getattr(o, 'stop_timeout', None),
        'resetStats': getattr(o, 'reset_stats', None),
    }
