"""The local stack's log keys per invocation: functions running in threads of one process each log
with their own function name and job, as each would in its own Lambda process."""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections.abc import Iterator

import pytest
from aws_lambda_powertools import Logger

from queryall_local import log_keys


@pytest.fixture
def installed() -> Iterator[None]:
    log_keys.install()
    yield
    log_keys.uninstall()


def _logger() -> tuple[Logger, io.StringIO]:
    stream = io.StringIO()  # a service of its own: Loggers of one service share their handler and keys
    return Logger(service=f"log-keys-{uuid.uuid4().hex}", stream=stream), stream


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _two_invocations_at_once(logger: Logger) -> None:
    """Two threads each set their function's keys as inject_lambda_context does, then both log."""
    both_set, both_logged = threading.Barrier(2), threading.Barrier(2)

    def invocation(name: str) -> None:
        logger.structure_logs(function_name=name)  # inject_lambda_context(clear_state=True)
        logger.append_keys(job_id=f"job-of-{name}")
        both_set.wait()
        logger.info("working")
        both_logged.wait()

    threads = [threading.Thread(target=invocation, args=(name,)) for name in ("QueryBatch", "Poll")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)


def test_concurrent_invocations_log_with_their_own_keys(installed: None) -> None:
    logger, stream = _logger()
    _two_invocations_at_once(logger)
    lines = _lines(stream)
    assert sorted((line["function_name"], line["job_id"]) for line in lines) == [
        ("Poll", "job-of-Poll"), ("QueryBatch", "job-of-QueryBatch")]
    assert all(line["service"].startswith("log-keys-") and line["message"] == "working" for line in lines)


def test_without_it_one_invocation_s_keys_leak_into_the_other_s_lines() -> None:
    logger, stream = _logger()
    _two_invocations_at_once(logger)
    assert len({line["function_name"] for line in _lines(stream)}) == 1  # what the local stack prevents


def test_a_nested_invocation_s_keys_are_gone_when_it_returns(installed: None) -> None:
    logger, stream = _logger()
    logger.structure_logs(function_name="Submit")
    with log_keys.own_keys():
        logger.structure_logs(function_name="SqlGuard")
        logger.info("inner")
    logger.info("outer")
    assert [(line["message"], line["function_name"]) for line in _lines(stream)] == [
        ("inner", "SqlGuard"), ("outer", "Submit")]


def test_uninstalled_the_formatter_keeps_one_set_of_keys_again(installed: None) -> None:
    logger, stream = _logger()
    log_keys.uninstall()
    logger.append_keys(job_id="j")
    elsewhere = threading.Thread(target=lambda: logger.info("elsewhere"))
    elsewhere.start()
    elsewhere.join(10)
    logger.info("here")
    assert {line.get("job_id") for line in _lines(stream)} == {"j"}
