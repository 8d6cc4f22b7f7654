"""The retention sweeper: its schedule (a failed sweep is tried again soon, not an interval
later), and the ISM policies a worker installs at start where the plugin is present."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opensearchpy.exceptions import AuthorizationException, ConflictError, NotFoundError
from opensearchpy.exceptions import ConnectionError as ClientConnectionError

from sinks import sweeper
from sinks.config import SinkConfig
from sinks.retention import install_ism_policies, ism_policies


async def test_a_failed_sweep_is_tried_again_after_retry_s_then_every_interval(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[float] = []
    loop = asyncio.get_running_loop()

    def sweep_once(config: SinkConfig, *, install_policies: bool) -> sweeper.Sweep:
        calls.append(loop.time())
        if len(calls) == 1:  # as opensearch-py raises it, with its cause
            refused = "node:9200: Connection refused"
            raise ClientConnectionError("N/A", refused, OSError(refused))
        return sweeper.Sweep(False, deleted=["botwatch-events-2020.01.01"])

    monkeypatch.setattr(sweeper, "sweep_once", sweep_once)
    monkeypatch.setattr(sweeper, "RETRY_S", 0.05)
    config = SinkConfig(opensearch_url="http://user:pw@node:9200")
    sweeping = sweeper.RetentionSweeper(config, interval_s=3600.0)
    sweeping.start()
    try:
        for _ in range(200):
            if sweeping.swept:
                break
            await asyncio.sleep(0.01)
    finally:
        await sweeping.stop()
    assert len(calls) == 2  # the second one a retry, not an interval later
    assert sweeping.swept == ["botwatch-events-2020.01.01"]
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning == (
        "retention sweep against http://user:***@node:9200 failed (trying again in 0.05 s): "
        "OSError: node:9200: Connection refused"  # once: opensearch-py's text says it twice
    )


async def test_the_policies_are_installed_at_start_and_not_again_on_later_sweeps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[bool] = []

    def sweep_once(config: SinkConfig, *, install_policies: bool) -> sweeper.Sweep:
        asked.append(install_policies)
        if len(asked) == 1:  # the node was down at start: the retry still installs them
            raise ConnectionError("node down")
        return sweeper.Sweep(True, ["botwatch-events"] if install_policies else [])

    monkeypatch.setattr(sweeper, "sweep_once", sweep_once)
    monkeypatch.setattr(sweeper, "RETRY_S", 0.01)
    sweeping = sweeper.RetentionSweeper(SinkConfig(), interval_s=0.01)
    sweeping.start()
    try:
        for _ in range(200):
            if len(asked) >= 4:
                break
            await asyncio.sleep(0.01)
    finally:
        await sweeping.stop()
    assert asked[:4] == [True, True, False, False]
    assert sweeping.policies == ["botwatch-events"]
    assert sweeping.swept == []


class FakeIsmNode:
    """What ``sweep_once`` asks of a node with the ISM plugin: the plugin list, the policies
    (returned with a field of the node's own added; ``conflicts`` PUTs answered 409, as when
    another worker wrote in between), and any other request, which it records (there must be
    none: ISM deletes, not the sweeper)."""

    def __init__(self, conflicts: int = 0) -> None:
        self.policies: dict[str, tuple[int, dict[str, Any]]] = {}
        self.conflicts = conflicts
        self.puts = 0
        self.other: list[str] = []
        self.cat = self
        self.transport = self

    def plugins(self, format: str) -> list[dict[str, str]]:
        return [{"component": "opensearch-index-management"}]

    def indices(self, **kwargs: Any) -> list[dict[str, str]]:
        self.other.append("cat.indices")
        return [{"index": "botwatch-events-2000.01.01"}]

    def perform_request(
        self, method: str, path: str, params: Any = None, body: Any = None
    ) -> dict[str, Any]:
        name = path.rsplit("/", 1)[1]
        if method == "GET":
            if name not in self.policies:
                raise NotFoundError(404, "not found", {})
            seq, stored = self.policies[name]
            policy = {**stored["policy"], "last_updated_time": 1, "schema_version": 21}
            return {"_seq_no": seq, "_primary_term": 1, "policy": policy}
        if method == "PUT":
            self.puts += 1
            seq = self.policies.get(name, (-1, {}))[0]
            if self.conflicts:
                self.conflicts -= 1
                self.policies[name] = (seq + 1, {"policy": {"description": "theirs"}})
                raise ConflictError(409, "version_conflict_engine_exception", {})
            assert (params or {}).get("if_seq_no", -1) == seq, "an update names its version"
            self.policies[name] = (seq + 1, body)
            return {}
        self.other.append(f"{method} {path}")
        return {}

    def close(self) -> None:
        pass


@pytest.mark.parametrize("conflicts", [0, 2])
def test_where_ism_is_present_a_sweep_installs_the_policies_and_deletes_nothing(
    monkeypatch: pytest.MonkeyPatch, conflicts: int
) -> None:
    node = FakeIsmNode(conflicts=conflicts)
    monkeypatch.setattr("opensearchpy.OpenSearch", lambda *a, **k: node)
    config = SinkConfig()
    sweep = sweeper.sweep_once(config, install_policies=True)
    assert sweep.ism and sweep.deleted == []
    assert sorted(sweep.policies) == sorted(ism_policies(config))
    assert {name: body for name, (_, body) in node.policies.items()} == ism_policies(config)
    assert node.other == []
    assert sweeper.sweep_once(config, install_policies=False) == sweeper.Sweep(True)
    assert node.other == []


def test_an_unchanged_policy_is_not_written_again_and_a_changed_one_is_updated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = FakeIsmNode()
    monkeypatch.setattr("opensearchpy.OpenSearch", lambda *a, **k: node)
    config = SinkConfig()
    assert set(install_ism_policies(node, config).values()) == {"created"}
    puts = node.puts
    # A restart: the same policies, each a new version if written again.
    assert sweeper.sweep_once(config, install_policies=True) == sweeper.Sweep(True)
    assert set(install_ism_policies(node, config).values()) == {"unchanged"}
    assert node.puts == puts
    shorter = SinkConfig(retention_dlq_days=7)
    outcomes = install_ism_policies(node, shorter)
    assert [p for p, o in outcomes.items() if o == "updated"] == ["botwatch-dlq-retention"]
    assert (
        node.policies["botwatch-dlq-retention"][1]
        == ism_policies(shorter)["botwatch-dlq-retention"]
    )
    assert "after 7 days" in node.policies["botwatch-dlq-retention"][1]["policy"]["description"]


def test_a_policy_that_keeps_conflicting_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    node = FakeIsmNode(conflicts=3)
    monkeypatch.setattr("opensearchpy.OpenSearch", lambda *a, **k: node)
    with pytest.raises(ConflictError):
        sweeper.sweep_once(SinkConfig(), install_policies=True)


async def test_a_refused_sweep_is_said_once_and_not_retried_until_the_next_interval(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    asked: list[bool] = []

    def sweep_once(config: SinkConfig, *, install_policies: bool) -> sweeper.Sweep:
        asked.append(install_policies)
        raise AuthorizationException(403, "security_exception", {})

    monkeypatch.setattr(sweeper, "sweep_once", sweep_once)
    monkeypatch.setattr(sweeper, "RETRY_S", 0.01)  # a retry would come this soon
    sweeping = sweeper.RetentionSweeper(SinkConfig(), interval_s=0.3)
    sweeping.start()
    try:
        await asyncio.sleep(0.2)
        assert asked == [True]
        await asyncio.sleep(0.3)
    finally:
        await sweeping.stop()
    assert asked == [True, False]  # the next interval's sweep; the install is not redone
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "was refused" in warnings[0] and "BOTWATCH_RETENTION_SWEEP_S=0" in warnings[0]
