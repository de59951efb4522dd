"""Metrics recorded while they are disabled (the local stack, tests) never pile up across invocations.

Powertools' flush does nothing while POWERTOOLS_METRICS_DISABLED is set, so the values of a metric kept
growing in the one process of the local stack; at the 100th value of one metric Powertools serializes
the set itself and, with no namespace, raised: the 100th QueryBatch of a test session failed every tenant.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from queryall.handlers.function import function_handler
from queryall.observability import metrics


def test_a_hundred_invocations_with_metrics_disabled_do_not_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.setattr(metrics.provider, "namespace", None)

    def step(event: dict, context: object) -> int:
        metrics.add_metric(name="DatabasesQueried", unit="Count", value=1)
        return 1

    handler = function_handler(step)
    context = SimpleNamespace(function_name="QueryBatchFunction", memory_limit_in_mb=128,
                              invoked_function_arn="arn:aws:lambda:us-east-1:1:function:f", aws_request_id="r")
    assert sum(handler({}, context) for _ in range(150)) == 150
    assert metrics.provider.metric_set == {}
