"""`botwatch demo`: the whole pipeline on this machine in a minute, then what it did."""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import click
import orjson
from aiokafka.errors import KafkaError

from botwatch.commands.common import BotwatchError, settings_of
from botwatch.commands.setup import opensearch_client, setup
from botwatch.settings import Settings
from botwatch.stack import Stack, StackError
from streams.config import StreamsConfig
from streams.deadletters import kafka as dl

BOTWATCH = [sys.executable, "-m", "botwatch"]
IDLE_CLOSE_S = 5
# The demo's alert rule: one that fires on its incident within the run (see the file).
DEMO_RULES = Path(__file__).with_name("demo_rules.yaml")
# The demo's own names, where the environment gives none. With a pipeline's (the
# defaults), its worker joined that pipeline's consumer group, and its fake bots stayed in
# that pipeline's state and indices: paged as down by the next worker for days.
DEMO_NAMES: dict[str, str] = {
    "BOTWATCH_APP_ID": "botwatch-demo",
    "BOTWATCH_EVENTS_TOPIC": "botwatch-demo.events",
    "BOTWATCH_DLQ_TOPIC": "botwatch-demo.dlq",
    "BOTWATCH_STATS_TOPIC": "botwatch-demo.stats",
    "BOTWATCH_ALERTS_TOPIC": "botwatch-demo.alerts",
    "BOTWATCH_SILENCES_TOPIC": "botwatch-demo.silences",
    "BOTWATCH_INDEX_PREFIX": "botwatch-demo",
}


@click.command()
@click.option("--duration", default=60.0, show_default=True, help="Seconds of generated load.")
@click.option("--bots", default=5, show_default=True, help="Synthetic bots.")
@click.option("--rate", default=500.0, show_default=True, help="Events per second.")
@click.option("--seed", default=7, show_default=True, help="Generator seed.")
@click.option(
    "--keep-files",
    is_flag=True,
    help="Keep the generator's truth file and the worker's log (removed after a run that "
    "went well by default).",
)
@click.pass_context
def demo(  # noqa: PLR0917 - one parameter per option
    ctx: click.Context, duration: float, bots: int, rate: float, seed: int, keep_files: bool
) -> None:
    """Stack up, setup, a worker and the generator with one incident; then a summary.

    Its topics (botwatch-demo.*), indices (botwatch-demo-*), consumer group, state and
    port are its own unless set in the environment; alert receivers are off."""
    settings, env, own, lock = _prepare(ctx)
    port = settings.streams.web_port
    workdir = Path(tempfile.mkdtemp(prefix="botwatch-demo-"))
    env["BOTWATCH_IDLE_CLOSE_S"] = str(IDLE_CLOSE_S)
    rules = settings.streams.rules_file
    if not rules:
        rules = env["BOTWATCH_ALERT_RULES"] = str(DEMO_RULES)
    log_path = workdir / "worker.log"
    click.echo(f"\nworker starting (log: {log_path}) ...")
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [*BOTWATCH, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        _wait_ready(worker, port, log_path)
        incident_bot = f"bot-{min(2, bots - 1):03d}"
        start, end = duration / 4, duration / 2
        click.echo(
            f"generating {duration:.0f} s of events from {bots} bots at {rate:.0f}/s; "
            f"incident: {incident_bot} fails half its events from {start:.0f} s to {end:.0f} s\n"
        )
        truth_path = workdir / "truth.json"
        started_at = time.time()
        generated = subprocess.run(
            [*BOTWATCH, "generate", "--bots", str(bots), "--rate", str(rate),
             "--duration", str(duration), "--error-rate", "0.02", "--failure-rate", "0.05",
             "--malformed", "0.01", "--seed", str(seed), "--truth", str(truth_path),
             "--incident", f"{incident_bot}:{start}:{end}:0.5"],
            env=env, check=False,
        )  # fmt: skip
        if generated.returncode != 0:
            raise BotwatchError("error: the generator failed (see its message above)")
        truth = orjson.loads(truth_path.read_bytes())
        click.echo("\nwaiting for the worker to process and close the last windows ...")
        records = truth["counts"]["records"]
        metrics = _wait_processed(worker, log_path, records, IDLE_CLOSE_S + 5, port)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
    processed = int(metrics.get("botwatch_records_in_total", 0))
    _summary(settings, truth, metrics, started_at, rules, own)
    if processed < records:
        raise BotwatchError(
            f"error: the worker processed {processed:,} of the {records:,} records sent within "
            f"300 s, so the summary above is partial (its log: {log_path})."
        )
    os.close(lock)
    if keep_files:
        click.echo(f"the run's files: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
        click.echo(f"the run's files ({workdir}) are removed: --keep-files keeps them")


RECEIVER_URLS: Final = (
    "BOTWATCH_ALERTMANAGER_URL",
    "BOTWATCH_ALERT_WEBHOOK_URL",
    "BOTWATCH_SLACK_WEBHOOK_URL",
)


def _prepare(ctx: click.Context) -> tuple[Settings, dict[str, str], dict[str, str], int]:
    """The demo's settings, environment and own names, with its lock held (a file
    descriptor) and the stack up and set up."""
    env, own = demo_env(settings_of(ctx), os.environ)
    settings = ctx.find_root().obj = Settings.load(environ=env)
    _refuse_taken_port(settings.streams.web_host, settings.streams.web_port)
    lock = _one_demo_at_a_time(settings.streams.state_dir)
    try:
        Stack(settings.stack_config()).up(report=click.echo)
    except StackError as exc:
        raise BotwatchError(f"error: {exc}") from None
    ctx.invoke(setup)
    if "BOTWATCH_APP_ID" in own and "BOTWATCH_EVENTS_TOPIC" in own:
        asyncio.run(_skip_leftovers(settings.kafka_bootstrap, settings.streams))
    return settings, env, own, lock


def demo_env(
    settings: Settings, environ: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """The environment of the demo's commands, and the names it chose itself.

    Flags given to ``botwatch`` (already in ``settings``) carry over; each of DEMO_NAMES,
    the state directory and the web port (a free one) is the demo's own unless
    ``environ`` sets it. Alert receivers are turned off whatever ``environ`` says."""
    own = {name: value for name, value in DEMO_NAMES.items() if name not in environ}
    # Receivers set in the shell are a pipeline's: its on-call would be paged for fake bots.
    own.update(dict.fromkeys(RECEIVER_URLS, ""))
    if "BOTWATCH_STATE_DIR" not in environ:
        own["BOTWATCH_STATE_DIR"] = str(settings.streams.state_dir / "demo")
    if "BOTWATCH_WEB_PORT" not in environ:
        own["BOTWATCH_WEB_PORT"] = str(_free_port(settings.streams.web_host))
    env = {
        **environ,
        "BOTWATCH_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "BOTWATCH_OPENSEARCH_URL": settings.opensearch_url,
        "BOTWATCH_HOME": str(settings.home),
        **own,
    }
    return env, own


def _one_demo_at_a_time(state_dir: Path) -> int:
    """A lock on the demo's state directory, held while it runs (released at exit).

    Two demos at once shared one consumer group and one set of topics: each counted the
    other's records, and one waited out its 300 s and failed."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / "demo.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BotwatchError(
            f"error: another `botwatch demo` runs with the state directory {state_dir}.\n"
            "  fix: wait for it to end (a demo takes about a minute and a half)."
        ) from None
    return fd


async def _skip_leftovers(bootstrap: str, config: StreamsConfig) -> None:
    """Start the demo's consumer group at the end of its events topic.

    A demo interrupted before its worker read everything left records behind: the next
    run's worker read them too, and its count of records processed (how the demo knows it
    is done, and what the summary says) counted them as this run's. Only for the demo's
    own group and topic: a pipeline's named in the environment is left as it is."""
    try:
        async with dl.consumer(bootstrap, config.app_id) as c:
            tps = await dl.partitions(c, config.events_topic, "events")
            c.assign(tps)
            ends = await c.end_offsets(tps)
            await c.commit({tp: ends[tp] for tp in tps})
    except (KafkaError, dl.KafkaUnavailable, dl.TopicMissing) as exc:
        click.echo(f"note: records an earlier demo left may be counted as this run's ({exc})")


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _refuse_taken_port(host: str, port: int) -> None:
    """The demo runs a worker of its own, and reads what it did from that worker's /metrics.

    Something already listening on the port BOTWATCH_WEB_PORT names made the demo's worker
    fail to start while the demo read the other one's counters and printed a wrong summary.
    """
    with socket.socket() as probe:
        probe.settimeout(1.0)
        taken = probe.connect_ex((host, port)) == 0
    if taken:
        raise BotwatchError(
            f"error: something already listens on {host}:{port} (BOTWATCH_WEB_PORT), where "
            "the demo's worker would serve the metrics it reads (a `botwatch worker`?).\n"
            "  fix: unset BOTWATCH_WEB_PORT (the demo then takes a free port), or name a "
            "free one."
        )


def _exited(worker: subprocess.Popen[bytes], log: Path, when: str) -> BotwatchError | None:
    if worker.poll() is None:
        return None
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    return BotwatchError(f"error: the worker exited {when}:\n{tail}")


def _wait_ready(worker: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        exited = _exited(worker, log, "while starting")
        if exited is not None:
            raise exited
        try:
            if _get(port, "/ready")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise BotwatchError(f"error: the worker did not become ready in 120 s (log: {log})")


def _metrics(port: int) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in _get(port, "/metrics")[1].decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def _wait_processed(
    worker: subprocess.Popen[bytes], log: Path, records: int, settle_s: float, port: int
) -> dict[str, float]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        exited = _exited(worker, log, "before it processed the demo's events")
        if exited is not None:
            raise exited
        metrics = _metrics(port)
        if metrics.get("botwatch_records_in_total", 0) >= records:
            time.sleep(settle_s)  # quiet partitions close their last windows
            return _metrics(port)
        time.sleep(0.5)
    return _metrics(port)


def _summary(  # noqa: PLR0917 - what the run made and where
    settings: Settings,
    truth: dict[str, Any],
    m: dict[str, float],
    since: float,
    rules: str,
    own: Mapping[str, str],
) -> None:
    sink = settings.sink
    prefix = sink.index_prefix
    client = opensearch_client(sink)
    try:
        client.indices.refresh(index=f"{prefix}-*")
        bots = sorted(truth["bots"])
        since_ms = int(since * 1000) - 1000
        window = {"range": {"timestamp": {"gte": since_ms}}}
        query = {"query": {"bool": {"filter": [{"terms": {"bot_id": bots}}, window]}}}
        indexed = client.count(index=f"{prefix}-events-*", body=query)["count"]
        # This run's windows only: the demo's bots have the same names every run.
        this_run = {"range": {"window_start": {"gte": since_ms - since_ms % 60_000}}}
        stats = client.search(
            index=f"{prefix}-stats-*",
            body={
                "size": 0,
                "query": {"bool": {"filter": [{"terms": {"bot_id": bots}}, this_run]}},
                "aggs": {
                    "bots": {
                        "terms": {"field": "bot_id", "size": len(bots)},
                        "aggs": {
                            "last": {"top_hits": {"size": 3, "sort": [{"window_start": "desc"}]}}
                        },
                    }
                },
            },
        )
        # Alerts of this run's windows: they start at a window's end, by event time.
        alerts = client.search(
            index=f"{prefix}-alerts-*",
            body={
                "size": 20,
                "query": {
                    "bool": {
                        "filter": [
                            {"terms": {"bot_id": bots}},
                            {"range": {"starts_at": {"gte": since_ms - since_ms % 60_000}}},
                        ]
                    }
                },
                "sort": [{"starts_at": "asc"}, {"fingerprint": "asc"}],
            },
            ignore_unavailable=True,
        )
    finally:
        client.close()

    counts = truth["counts"]

    def stage(name: str) -> int:
        return int(m.get(f'botwatch_dead_letters_total{{stage="{name}"}}', 0))

    click.echo("\n=== botwatch demo: what happened ===")
    click.echo(f"events sent:        {counts['records']:,} ({counts['valid']:,} valid, "
               f"{counts['malformed']:,} malformed on purpose)")  # fmt: skip
    click.echo(f"processed:          {int(m.get('botwatch_records_in_total', 0)):,} records")
    click.echo(f"indexed:            {indexed:,} event documents in {prefix}-events-*")
    click.echo(f"dead-lettered:      decode {stage('decode')}, validate {stage('validate')}, "
               f"sink {stage('sink')}, job_failure {stage('job_failure')} "
               f"(topic {settings.streams.dlq_topic}, index {prefix}-dlq-*)")  # fmt: skip
    click.echo(f"windows closed:     {int(m.get('botwatch_windows_closed_total', 0))}")
    click.echo("\nlast closed 1-minute windows per bot:")
    click.echo(f"  {'bot':<10} {'window start':<22} {'events':>7} {'error rate':>10} {'p95 ms':>9}")
    for bucket in stats["aggregations"]["bots"]["buckets"]:
        for hit in bucket["last"]["hits"]["hits"]:
            w = hit["_source"]
            p95 = w["duration_ms"]["p95"]
            click.echo(
                f"  {w['bot_id']:<10} {w['window_start']:<22} {w['count']:>7} "
                f"{w['error_rate']:>10.1%} {'-' if p95 is None else round(p95):>9}"
            )
    _print_alerts([hit["_source"] for hit in alerts["hits"]["hits"]], rules)
    url = sink.opensearch_url.rstrip("/")
    click.echo("\ntry these against OpenSearch:")
    click.echo(f"  curl -s '{url}/{prefix}-events-*/_search?q=level:error&size=3&pretty'")
    click.echo(f"  curl -s '{url}/{prefix}-stats-*/_search?sort=error_rate:desc&size=3&pretty'")
    click.echo(f"  curl -s '{url}/{prefix}-dlq-*/_search?q=stage:validate&size=3&pretty'")
    click.echo(f"  curl -s '{url}/_cat/indices/{prefix}-*?v'")
    # One document per incident: firing, then replaced by its resolution.
    click.echo(f"  curl -s '{url}/{prefix}-alerts-*/_search?sort=starts_at:desc&size=3&pretty'")
    names = {k: v for k, v in own.items() if k in DEMO_NAMES}
    if names:
        click.echo(
            "\nthe demo used topics, indices and a consumer group of its own (a pipeline's "
            "are left alone); for the commands below to look at them, first:"
        )
        click.echo("  export " + " ".join(f"{k}={v}" for k, v in sorted(names.items())))
    click.echo("\nper-bot windows in the terminal, live: `botwatch top` (`--once` to print once)")
    click.echo("the alerts of the last hour: `botwatch alerts history --since 1h`")
    click.echo("its dead letters: `botwatch dlq list --summary`")
    click.echo("the stack keeps running: `botwatch stack status`, `botwatch stack down`")


def _print_alerts(alerts: list[dict[str, Any]], rules: str) -> None:
    """The run's alerts: when each fired and, once its bot's next window was fine, resolved."""
    which = "the demo's rule" if rules == str(DEMO_RULES) else "the rules"
    if not alerts:
        click.echo(f"\nalerts: none fired ({which}: {rules})")
        return
    click.echo(f"\nalerts ({which}: {rules}):")
    click.echo(f"  {'bot':<10} {'rule':<20} {'severity':<9} {'fired':<22} resolved")
    for a in alerts:
        click.echo(
            f"  {a['bot_id']:<10} {a['rule']:<20} {a['severity']:<9} {a['starts_at']:<22} "
            f"{a.get('ends_at') or '- (firing)'}"
        )
