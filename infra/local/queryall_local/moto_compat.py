"""Where the local stack works around moto: every patch of moto's code, in one registry.

Each :class:`MotoPatch` says what moto does wrong (with the upstream issue where there is one), the
moto service whose code it changes, and the moto version it was last checked against
(``verified_on``). Applying one is entering a context manager: the local stack enters a service's
patches when that service is first used and undoes them in reverse when it stops. A moto upgrade
shows at once which patches to look at again: :func:`unverified` lists those checked against another
version (a warning at start, and tests/unit/test_moto_compat.py fails until each is re-checked).

Dropped when moto fixed it (keep the record here, so nobody puts it back):
- moto <= 5.2.1 deep-copied a state machine with its live executions on every StartExecution, so the
  second execution in a process failed with "cannot pickle '_thread.RLock' object"
  (getmoto/moto#10077, fixed in 5.2.5 by getmoto/moto#10093).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import logging
import sys
import threading
import types
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class MotoPatch:
    """One workaround for a moto gap, applied while a local stack uses ``service``."""

    name: str
    service: str  # moto's backend name: the patch is applied on the first request to it
    works_around: str  # what moto does wrong, and the upstream issue if there is one
    verified_on: str  # the moto version whose code this patch was last checked against
    apply: Callable[[], contextlib.AbstractContextManager[Any]]


# ----------------------------------------------------------------------------- ItemBatcher

# ItemBatcher of each Map state, keyed by (state machine ARN, state name): moto's parser never sees it.
_ITEM_BATCHERS: dict[tuple[str, str], dict[str, Any]] = {}
_ITEM_BATCHERS_LOCK = threading.Lock()


def _map_states(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (name, state) of a definition's States, nested ones (Map processors, Parallel branches) too."""
    for name, state in states.items():
        yield name, state
        for inner in [state.get("ItemProcessor"), state.get("Iterator"), *state.get("Branches", [])]:
            if inner:
                yield from _map_states(inner.get("States", {}))


def item_batchers(definition: str) -> dict[str, dict[str, Any]]:
    """The ItemBatcher of each Map state in ``definition``, by state name."""
    document = json.loads(definition)
    return {name: state["ItemBatcher"] for name, state in _map_states(document.get("States", {}))
            if state.get("Type") == "Map" and "ItemBatcher" in state}


def without_item_batchers(definition: str) -> str:
    """The definition with every Map state's ItemBatcher taken out, as moto's parser can read it.

    moto's ASL grammar has no ItemBatcher (CreateStateMachine fails on it); its distributed Map
    otherwise runs, so the local stack batches the items itself, as Step Functions would: consecutive
    groups of MaxItemsPerBatch(Path), each child getting ``{"Items": [...], "BatchInput": {...}}``.
    Applied where moto parses a definition, so the stored (and described) definition is the template's.
    """
    document = json.loads(definition)
    for name, state in _map_states(document.get("States", {})):
        if (state.get("Type") == "Map" and state.pop("ItemBatcher", None) is not None
                and ("ItemSelector" in state or "Parameters" in state)):
            raise ValueError(f"Map state {name}: ItemSelector with ItemBatcher is not emulated locally")
    return json.dumps(document)


def _resolve(template: Any, state_input: Any) -> Any:
    """A payload template (``"key.$": "$.path"``) against the Map state's input."""
    from moto.stepfunctions.parser.asl.utils.json_path import extract_json

    if isinstance(template, dict):
        return {key.removesuffix(".$"): extract_json(value, state_input) if key.endswith(".$") else
                _resolve(value, state_input) for key, value in template.items()}
    if isinstance(template, list):
        return [_resolve(value, state_input) for value in template]
    return template


def _batched_items(items: list[Any], batcher: dict[str, Any], state_input: Any) -> list[dict[str, Any]]:
    from moto.stepfunctions.parser.asl.utils.json_path import extract_json

    size = batcher.get("MaxItemsPerBatch") or extract_json(batcher["MaxItemsPerBatchPath"], state_input)
    batch_input = {"BatchInput": _resolve(batcher["BatchInput"], state_input)} if "BatchInput" in batcher else {}
    return [{"Items": items[start: start + size], **batch_input} for start in range(0, len(items), int(size))]


def _remember_item_batchers(arn: str, definition: str) -> None:
    with _ITEM_BATCHERS_LOCK:
        for key in [key for key in _ITEM_BATCHERS if key[0] == arn]:
            del _ITEM_BATCHERS[key]
        for state, batcher in item_batchers(definition).items():
            _ITEM_BATCHERS[(arn, state)] = batcher


def batcher_for(state_machine_arn: str, state_name: str) -> dict[str, Any] | None:
    """The ItemBatcher the template gave ``state_name`` of that state machine (its version ARNs too)."""
    with _ITEM_BATCHERS_LOCK:
        batcher = _ITEM_BATCHERS.get((state_machine_arn, state_name))
        if batcher is None and state_machine_arn.count(":") > 6:  # arn:aws:states:r:a:stateMachine:name:version
            batcher = _ITEM_BATCHERS.get((state_machine_arn.rsplit(":", 1)[0], state_name))
        return batcher


@contextlib.contextmanager
def _item_batcher() -> Iterator[None]:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
        DistributedIterationComponent,
    )
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    parse = AmazonStateLanguageParser.__dict__["parse"].__func__
    map_run = DistributedIterationComponent._map_run
    create = StepFunctionsParserBackend.create_state_machine
    update = StepFunctionsParserBackend.update_state_machine

    def parse_without_item_batchers(definition: str) -> Any:
        return parse(without_item_batchers(definition))

    @functools.wraps(create)
    def create_state_machine(self: Any, name: str, definition: str, *args: Any, **kwargs: Any) -> Any:
        machine = create(self, name, definition, *args, **kwargs)
        _remember_item_batchers(machine.arn, definition)
        return machine

    @functools.wraps(update)
    def update_state_machine(self: Any, arn: str, definition: Any = None, *args: Any, **kwargs: Any) -> Any:
        machine = update(self, arn, definition, *args, **kwargs)
        if definition is not None:
            _remember_item_batchers(arn, definition)
        return machine

    @functools.wraps(map_run)
    def batched_map_run(self: Any, env: Any, eval_input: Any) -> None:
        arn = env.states.context_object.context_object_data["StateMachine"]["Id"]
        batcher = batcher_for(arn, eval_input.state_name)
        if batcher is not None:  # the items read by the ItemReader are on top of the stack
            env.stack.append(_batched_items(env.stack.pop(), batcher, env.states.get_input()))
        map_run(self, env, eval_input)

    with contextlib.ExitStack() as patches:
        patches.enter_context(mock.patch.object(AmazonStateLanguageParser, "parse",
                                                staticmethod(parse_without_item_batchers)))
        patches.enter_context(mock.patch.object(StepFunctionsParserBackend, "create_state_machine",
                                                create_state_machine))
        patches.enter_context(mock.patch.object(StepFunctionsParserBackend, "update_state_machine",
                                                update_state_machine))
        patches.enter_context(mock.patch.object(DistributedIterationComponent, "_map_run", batched_map_run))
        patches.callback(_ITEM_BATCHERS.clear)
        yield


# ----------------------------------------------------------------------------- parse once

# Parse trees by definition text, at most this many (a stack has one or two state machines; tests make more).
_PARSE_TREES_KEPT = 32


@contextlib.contextmanager
def _parse_once() -> Iterator[None]:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    parse = AmazonStateLanguageParser.parse  # as the patches applied before this one left it
    trees: collections.OrderedDict[str, Any] = collections.OrderedDict()
    lock = threading.Lock()

    def parse_once(definition: str) -> Any:
        with lock:
            tree = trees.get(definition)
            if tree is not None:
                trees.move_to_end(definition)
        if tree is None:
            program, tree = parse(definition)  # a definition that does not parse raises every time
            with lock:
                trees[definition] = tree
                while len(trees) > _PARSE_TREES_KEPT:
                    trees.popitem(last=False)
            return program, tree
        # The tree is only read; the program's components are built afresh, so no execution shares them.
        return Preprocessor().visit(tree), tree

    with contextlib.ExitStack() as patches:
        patches.enter_context(mock.patch.object(AmazonStateLanguageParser, "parse", staticmethod(parse_once)))
        patches.enter_context(_json_paths_once())
        yield


# JSONPath expressions kept parsed, by their text (a state machine has a few dozen).
_JSON_PATHS_KEPT = 1024


@contextlib.contextmanager
def _json_paths_once() -> Iterator[None]:
    """Every JSONPath the interpreter evaluates (Parameters, ItemsPath, ResultPath, Choice variables...) is
    parsed by jsonpath_ng, which builds its PLY parser anew each time (~5 ms, ~20 times a small job). The
    parsed expressions are only read (``find``, ``update_or_create``), so one per text is shared."""
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    with contextlib.ExitStack() as patches:
        for module in (json_path, result_path):
            parse = functools.lru_cache(maxsize=_JSON_PATHS_KEPT)(module.parse)
            patches.enter_context(mock.patch.object(module, "parse", parse))
        yield


# ----------------------------------------------------------------------------- one Lambda client

@contextlib.contextmanager
def _lambda_client_once() -> Iterator[None]:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    make = lambda_eval_utils.boto_client_for
    clients: dict[str, Any] = {}
    lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        # moto's own client ignores the task's credentials (fixed test keys), so one per region and service
        # is the same client; its endpoint (moto's port) stays for as long as the stack runs.
        with lock:  # clients are thread-safe once made; making them is not
            client = clients.get(f"{region}/{service}")
            if client is None:
                client = clients[f"{region}/{service}"] = make(region=region, service=service)
            return client

    with mock.patch.object(lambda_eval_utils, "boto_client_for", boto_client_for):
        yield


# ----------------------------------------------------------------------------- Express child executions


def express_children_as_standard(definition: str) -> str:
    """The definition with each distributed Map's ``ExecutionType: EXPRESS`` read as STANDARD.

    moto's ASL grammar accepts only STANDARD there (CreateStateMachine fails on EXPRESS). Its child
    executions run the same states either way: Task, Retry, Catch and TimeoutSeconds behave alike, so the
    workflow's own handling of a late or failed batch is exercised locally. What only AWS does to Express
    children (the 300 s cap on one child, at-most-once runs, no execution history) is in docs/performance.md.
    """
    document = json.loads(definition)
    changed = False
    for _, state in _map_states(document.get("States", {})):
        config = (state.get("ItemProcessor") or {}).get("ProcessorConfig") or {}
        if state.get("Type") == "Map" and config.get("ExecutionType") == "EXPRESS":
            config["ExecutionType"] = "STANDARD"
            changed = True
    return json.dumps(document) if changed else definition


@contextlib.contextmanager
def _express_children() -> Iterator[None]:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    parse = AmazonStateLanguageParser.__dict__["parse"].__func__

    def parse_express_as_standard(definition: str) -> Any:
        return parse(express_children_as_standard(definition))

    with mock.patch.object(AmazonStateLanguageParser, "parse", staticmethod(parse_express_as_standard)):
        yield


# ----------------------------------------------------------------------------- unnamed executions

@contextlib.contextmanager
def _named_executions() -> Iterator[None]:
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution

    @functools.wraps(original)
    def start_execution(self: Any, state_machine_arn: str, name: Any = None, *args: Any, **kwargs: Any) -> Any:
        return original(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)

    with mock.patch.object(StepFunctionsParserBackend, "start_execution", start_execution):
        yield


# ----------------------------------------------------------------------------- status change events

# Who hears of an execution that ended (the local stack's rule targets); each gets the event's detail.
_EXECUTION_LISTENERS: list[Callable[[dict[str, Any]], None]] = []


@contextlib.contextmanager
def execution_listener(listener: Callable[[dict[str, Any]], None]) -> Iterator[None]:
    """Give ``listener`` the "Step Functions Execution Status Change" detail of every execution that
    ends while this is entered (with the sfn-status-change-events patch applied)."""
    _EXECUTION_LISTENERS.append(listener)
    try:
        yield
    finally:
        _EXECUTION_LISTENERS.remove(listener)


def _epoch_ms(value: Any) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def status_change_detail(execution: Any) -> dict[str, Any]:
    """The event detail Step Functions sends for ``execution`` (a moto parser Execution) as it ends."""
    return {
        "executionArn": execution.exec_arn,
        "stateMachineArn": execution.state_machine_arn,
        "name": execution.name,
        "status": execution.exec_status.value,
        "startDate": _epoch_ms(execution.start_date),
        "stopDate": _epoch_ms(execution.stop_date),
        "input": json.dumps(execution.input_data),
        "output": None if execution.output is None else json.dumps(execution.output),
        "error": execution.error,
        "cause": execution.cause,
    }


@contextlib.contextmanager
def _status_change_events() -> Iterator[None]:
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

    original = BaseExecutionWorkerCommunication.terminated

    @functools.wraps(original)
    def terminated(self: Any) -> None:
        original(self)
        detail = status_change_detail(self.execution)
        for listener in list(_EXECUTION_LISTENERS):
            try:
                listener(detail)
            except Exception:  # a listener's failure must not fail moto's execution thread
                LOG.exception("execution status listener failed")

    with mock.patch.object(BaseExecutionWorkerCommunication, "terminated", terminated):
        yield


@contextlib.contextmanager
def _stopped_stays_aborted() -> Iterator[None]:
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped

    set_error, set_timed_out = Environment.set_error, Environment.set_timed_out

    @functools.wraps(set_error)
    def error_unless_stopped(self: Any, *args: Any, **kwargs: Any) -> None:
        if not isinstance(self._program_state, ProgramStopped):
            set_error(self, *args, **kwargs)

    @functools.wraps(set_timed_out)
    def timed_out_unless_stopped(self: Any, *args: Any, **kwargs: Any) -> None:
        if not isinstance(self._program_state, ProgramStopped):
            set_timed_out(self, *args, **kwargs)

    with contextlib.ExitStack() as patches:
        patches.enter_context(mock.patch.object(Environment, "set_error", error_unless_stopped))
        patches.enter_context(mock.patch.object(Environment, "set_timed_out", timed_out_unless_stopped))
        yield


# ----------------------------------------------------------------------------- DynamoDB writes

_DYNAMODB_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")
# Reads are locked where the response is built (moto's backend hands the handler the live item).
_DYNAMODB_READS = ("get_item", "batch_get_item", "query", "scan", "transact_get_items")


@contextlib.contextmanager
def _atomic_dynamodb_writes() -> Iterator[None]:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.RLock()

    def serialized(write: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(write)
        def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return write(self, *args, **kwargs)

        return locked

    with contextlib.ExitStack() as patches:
        for name in _DYNAMODB_WRITES:
            patches.enter_context(mock.patch.object(DynamoDBBackend, name, serialized(getattr(DynamoDBBackend, name))))
        # A read renders the live item (its projection, its attributes for the response) at the level of the
        # request handler: under the same lock, so it never sees a write half done.
        for name in _DYNAMODB_READS:
            patches.enter_context(mock.patch.object(DynamoHandler, name, serialized(getattr(DynamoHandler, name))))
        yield


# ----------------------------------------------------------------------------- SSM without EC2

class _Ec2BackendsOnFirstUse:
    """Stands in for ``moto.ec2.ec2_backends`` in moto.ssm: imports moto.ec2 when first indexed."""

    def __getitem__(self, account_id: str) -> Any:
        from moto.ec2 import ec2_backends

        return ec2_backends[account_id]


@contextlib.contextmanager
def _ssm_without_ec2() -> Iterator[None]:
    if "moto.ssm.models" not in sys.modules and "moto.ec2" not in sys.modules:
        stub = types.ModuleType("moto.ec2")
        stub.ec2_backends = _Ec2BackendsOnFirstUse()  # type: ignore[attr-defined]
        sys.modules["moto.ec2"] = stub
        try:
            import moto.ssm.models  # noqa: F401 - imported now, with the stand-in
        finally:
            if sys.modules.get("moto.ec2") is stub:
                del sys.modules["moto.ec2"]
    yield


# ----------------------------------------------------------------------------- EventBridge targets


def _event_with_account() -> contextlib.AbstractContextManager[Any]:
    from moto.events.utils import EventTemplateParser

    template = EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE
    return mock.patch.object(EventTemplateParser, "DEFAULT_EVENT_INPUT_TEMPLATE",
                             template.replace('"version": "0", ', '"version": "0", "account": "<account>", ', 1))


@contextlib.contextmanager
def _used_shard_iterators_forgotten() -> Iterator[None]:
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend

    original = DynamoDBStreamsBackend.get_records

    def get_records(self: Any, iterator_arn: str, limit: int) -> dict[str, Any]:
        answer = original(self, iterator_arn, limit)
        self.shard_iterators.pop(iterator_arn, None)  # its successor is in the answer
        return answer

    with mock.patch.object(DynamoDBStreamsBackend, "get_records", get_records):
        yield


# ----------------------------------------------------------------------------- EventBridge to Lambda

@contextlib.contextmanager
def _events_lambda_targets() -> Iterator[None]:
    import copy

    from moto.core.utils import iso_8601_datetime_without_milliseconds, utcfromtimestamp
    from moto.events.models import Rule
    from moto.events.utils import EventTemplateParser
    from moto.utilities.arns import parse_arn

    from . import lambda_runtime

    original = Rule.send_to_targets

    def is_lambda(target: dict[str, Any]) -> bool:
        return parse_arn(target["Arn"]).service == "lambda"

    @functools.wraps(original)
    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        functions = [target for target in self.targets if is_lambda(target)]
        if functions and self.event_pattern.matches_event(original_event):
            for target in functions:
                event = dict(original_event)
                if transform_input:
                    transformer = target.get("InputTransformer", {})
                    event = EventTemplateParser.parse(input_template=transformer.get("InputTemplate"),
                                                      input_paths_map=transformer.get("InputPathsMap", {}),
                                                      event=event)
                if isinstance(event, dict):  # moto's own fields, as a target sees them on AWS
                    event.pop("ingestion-time", None)
                    if isinstance(event.get("time"), int | float):  # epoch seconds in moto, ISO 8601 on AWS
                        event["time"] = iso_8601_datetime_without_milliseconds(utcfromtimestamp(event["time"]))
                runtime = lambda_runtime.active()
                if runtime is None:
                    LOG.warning("no local Lambda runtime: event %s for %s not delivered", event.get("id"),
                                target["Arn"])
                    continue
                # As EventBridge does: an asynchronous invocation.
                runtime.invoke_async(target["Arn"], json.dumps(event).encode())
        others = [target for target in self.targets if not is_lambda(target)]
        if others:
            rest = copy.copy(self)
            rest.targets = others
            original(rest, original_event, transform_input)

    with mock.patch.object(Rule, "send_to_targets", send_to_targets):
        yield


# ----------------------------------------------------------------------------- the registry

PATCHES: tuple[MotoPatch, ...] = (
    MotoPatch(
        name="sfn-item-batcher",
        service="stepfunctions",
        works_around="moto's ASL grammar has no ItemBatcher: CreateStateMachine rejects a Map state that has "
                     "one. The definition reaches the parser without it and the local stack batches the items.",
        verified_on="5.2.5",
        apply=_item_batcher,
    ),
    MotoPatch(
        name="sfn-parse-once",
        service="stepfunctions",
        works_around="moto parses the state machine's definition with its ANTLR grammar on every execution "
                     "(60-150 ms for this one on this machine, a third of a small job's time), and each JSONPath "
                     "with a new PLY parser every time it is evaluated (~5 ms, ~20 per small job). The parse "
                     "tree is kept per definition text (each execution still gets its own components from it), "
                     "and each parsed JSONPath per text.",
        verified_on="5.2.5",
        apply=_parse_once,
    ),
    MotoPatch(
        name="sfn-lambda-client-once",
        service="stepfunctions",
        works_around="moto's Step Functions makes a new boto3 Lambda client for every Lambda task it runs "
                     "(15-50 ms of CPU on this machine, three times per small job), with fixed test keys "
                     "whatever the task's credentials. One client per region serves every task.",
        verified_on="5.2.5",
        apply=_lambda_client_once,
    ),
    MotoPatch(
        name="sfn-express-children",
        service="stepfunctions",
        works_around="moto's ASL grammar accepts only STANDARD as a distributed Map's ExecutionType: "
                     "CreateStateMachine rejects EXPRESS. The parser reads EXPRESS children as STANDARD ones "
                     "(same states, retries, catches and timeouts); the stored definition keeps EXPRESS.",
        verified_on="5.2.5",
        apply=_express_children,
    ),
    MotoPatch(
        name="sfn-unnamed-executions",
        service="stepfunctions",
        works_around="AWS names an execution started without a name with a UUID; moto's parser backend uses "
                     "None, so the second unnamed execution of a state machine fails with ExecutionAlreadyExists.",
        verified_on="5.2.5",
        apply=_named_executions,
    ),
    MotoPatch(
        name="sfn-status-change-events",
        service="stepfunctions",
        works_around="Step Functions puts a \"Step Functions Execution Status Change\" event on the default bus "
                     "when an execution ends; moto's parser sends none. The local stack hears each execution "
                     "end (stopped, failed, timed out, succeeded) and delivers the event to the template's rules.",
        verified_on="5.2.5",
        apply=_status_change_events,
    ),
    MotoPatch(
        name="sfn-stopped-stays-aborted",
        service="stepfunctions",
        works_around="A stopped execution is ABORTED on AWS whatever its running step does next; moto's "
                     "Environment.set_error overwrites the stop, so an execution stopped inside a Map ended "
                     "FAILED (the stopped iterations fail the Map). After a stop, errors and timeouts are ignored.",
        verified_on="5.2.5",
        apply=_stopped_stays_aborted,
    ),
    MotoPatch(
        name="ssm-without-ec2",
        service="ssm",
        works_around="moto.ssm imports moto.ec2 (about 1 s of imports, a third of `local invoke`) for "
                     "ec2_backends, which only Run Command targets use. It is imported with a stand-in that "
                     "imports moto.ec2 on first use; the stand-in stays (it behaves as ec2_backends).",
        verified_on="5.2.5",
        apply=_ssm_without_ec2,
    ),
    MotoPatch(
        name="events-target-account",
        service="events",
        works_around="A rule's target gets the whole event (account included) when it has no InputTransformer; "
                     "moto's default input template leaves out `account`.",
        verified_on="5.2.5",
        apply=_event_with_account,
    ),
    MotoPatch(
        name="dynamodbstreams-iterators-expire",
        service="dynamodbstreams",
        works_around="moto keeps every shard iterator it ever handed out (AWS expires them after 15 minutes); "
                     "the local stack's stream poller gets a new one with every GetRecords, ~2 KB each, 10 a "
                     "second. An iterator is forgotten once GetRecords has used it.",
        verified_on="5.2.5",
        apply=_used_shard_iterators_forgotten,
    ),
    MotoPatch(
        name="dynamodb-atomic-writes",
        service="dynamodb",
        works_around="DynamoDB applies each item write atomically (its condition and an ADD included); moto "
                     "reads, checks and writes without a lock, so concurrent UpdateItem ADDs lost updates (about "
                     "10% of 1,000 concurrent increments) and two racing conditional writes could both pass. A read "
                     "rendering an item while a write changed it failed (\"dictionary changed size during "
                     "iteration\", a 500 the client retried) or saw a job completed without its meta (a poll's 500, "
                     "KeyError 'returned_rows'): reads take the same lock.",
        verified_on="5.2.5",
        apply=_atomic_dynamodb_writes,
    ),
    MotoPatch(
        name="events-lambda-targets",
        service="events",
        works_around="moto's PutEvents delivers to log groups, archives, SQS, buses and API destinations; a rule "
                     "with a Lambda target raises NotImplementedError (a 500). Matching events go to the local "
                     "Lambda runtime as an asynchronous invocation, as EventBridge invokes it.",
        verified_on="5.2.5",
        apply=_events_lambda_targets,
    ),
)


def moto_version() -> str:
    from importlib.metadata import version  # moto.__version__ without importing moto's package

    return version("moto")


def patches_for(service: str) -> tuple[MotoPatch, ...]:
    return tuple(patch for patch in PATCHES if patch.service == service)


def unverified(version: str | None = None) -> list[MotoPatch]:
    """The patches last checked against another moto version than ``version`` (the installed one)."""
    version = version or moto_version()
    return [patch for patch in PATCHES if patch.verified_on != version]


def apply(service: str, patches: contextlib.ExitStack) -> None:
    """Enter ``service``'s patches into ``patches`` (the stack's ExitStack, which undoes them)."""
    for patch in patches_for(service):
        if patch.verified_on != moto_version():
            LOG.warning("moto %s: patch %s was verified on moto %s; check whether it is still needed (%s)",
                        moto_version(), patch.name, patch.verified_on, patch.works_around)
        patches.enter_context(patch.apply())
