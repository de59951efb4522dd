"""``queryall`` command line: ``queryall local serve|seed|invoke|put-event|send-message``.

Top-level commands are registered in ``_COMMANDS`` so client commands (``queryall query``,
``queryall jobs``) can be added next to ``local`` without touching the rest.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from queryall_client.cli import add_commands as add_client_commands

from .stack import DEFAULT_API_KEY, LocalStack  # the stack's modules are imported when it starts

DEFAULT_TENANTS_DIR = Path(".queryall") / "tenants"
DEFAULT_TENANT_COUNT = 40
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


def _default_tenants_dir() -> Path:
    return Path(os.environ.get("QUERYALL_TENANTS_DIR") or DEFAULT_TENANTS_DIR)


def _default_api_key() -> str:
    return os.environ.get("QUERYALL_API_KEY") or DEFAULT_API_KEY


# --------------------------------------------------------------------------------------------
# queryall local ...


def _add_local(subparsers: Any) -> None:
    local = subparsers.add_parser("local", help="run the stack on this machine (no AWS account, no Docker)")
    commands = local.add_subparsers(dest="local_command", metavar="COMMAND", required=True)

    def common(p: argparse.ArgumentParser, *, api_key: bool = True) -> None:
        p.add_argument(
            "--tenants-dir",
            type=Path,
            default=None,
            help=f"folder of tenant .duckdb files (default: $QUERYALL_TENANTS_DIR or {DEFAULT_TENANTS_DIR})",
        )
        if api_key:
            p.add_argument(
                "--api-key",
                default=None,
                help=f"accepted API key (default: $QUERYALL_API_KEY or {DEFAULT_API_KEY})",
            )
        p.add_argument("--template", type=Path, default=None, help="SAM template (default: the repo's template.yaml)")

    serve = commands.add_parser("serve", help="serve the HTTP API until interrupted")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument("-v", "--verbose", action="store_true", help="log every request")
    serve.add_argument(
        "--parameter", action="append", default=[], metavar="NAME=VALUE", type=_parameter,
        help="override a template parameter, e.g. QueryBatchSize=50 (repeatable)",
    )
    serve.add_argument(
        "--forward-events", default=None, metavar="URL",
        help="POST each job state-change event (the EventBridge event as JSON) to URL, retrying until it "
             "answers 2xx (every event is logged either way)",
    )
    serve.add_argument(
        "--lambda-concurrency", type=int, default=None, metavar="N",
        help="workflow Lambdas running at once (default: one per CPU core; Map iterations beyond it queue)",
    )
    serve.add_argument(
        "--tenants-backend", choices=["folder", "s3"], default="folder",
        help="folder: read --tenants-dir in place; s3: upload its databases to the local S3 at start and "
             "read them with the s3:// backend",
    )
    serve.add_argument(
        "--s3-latency-ms", type=float, default=0.0, metavar="N",
        help="add N ms before every S3 request the local stack serves (network-bound behaviour on one machine)",
    )
    generator = serve.add_argument_group("question mode (template parameters SqlGenerator…)")
    generator.add_argument("--sql-generator", choices=["none", "bedrock", "openai", "motherduck"], default=None,
                           help="what turns a question into SQL (default: none, questions fail generation_failed)")
    generator.add_argument("--sql-generator-url", default=None, metavar="URL",
                           help="openai: base URL, e.g. http://127.0.0.1:8080/v1 (llama.cpp, Ollama, vLLM)")
    generator.add_argument("--sql-generator-model", default=None, metavar="NAME",
                           help="the model name (openai) or model id (bedrock)")
    generator.add_argument("--sql-generator-api-key", default=None, metavar="KEY",
                           help="openai: the endpoint's API key (stored in the local SSM as a SecureString)")
    generator.add_argument("--sql-generator-timeout", type=float, default=None, metavar="SECONDS",
                           help="time allowed for one generation, its retry included (default 20)")
    serve.add_argument("--jwt-issuer", metavar="ISS", help="accept Bearer tokens from this issuer (with the next two)")
    serve.add_argument("--jwt-audience", metavar="AUD", help="the audience Bearer tokens must name")
    serve.add_argument("--jwks-url", metavar="URL", help="where the issuer's signing keys (JWKS) are")
    serve.add_argument(
        "--faults", default=None, metavar="SPEC",
        help="local only: make chosen tenants fail, e.g. 'raise=a,b;hang=c;corrupt=d;throttle=e;timeout=f' "
             "(default: $QUERYALL_FAULTS; see queryall_local/faults.py)",
    )
    common(serve)
    serve.set_defaults(func=_serve)

    seed = commands.add_parser("seed", help="create tenant databases for local runs")
    seed.add_argument("--tenants-dir", type=Path, default=None)
    seed.add_argument("--tenants", type=int, default=DEFAULT_TENANT_COUNT, help="how many tenant databases")
    seed.add_argument("--rows-scale", type=float, default=1.0, help="multiply the rows per tenant")
    seed.set_defaults(func=_seed)

    invoke = commands.add_parser("invoke", help="run one function on an event and print its result")
    invoke.add_argument("function", help="logical id of the function in the template")
    invoke.add_argument("-e", "--event", required=True, help="event JSON file ('-' reads stdin)")
    common(invoke)
    invoke.set_defaults(func=_invoke)

    put_event = commands.add_parser(
        "put-event", help="put a submit event on the local EventBridge bus; print the job made or the DLQ reason")
    put_event.add_argument("file", metavar="FILE", help="a PutEvents entry, an EventBridge event or just the "
                                                        "submit body, as JSON ('-' reads stdin)")
    common(put_event)
    put_event.set_defaults(func=_put_event)

    send_message = commands.add_parser(
        "send-message", help="send a submit body to the local SQS queue; print the job made or the DLQ reason")
    send_message.add_argument("file", metavar="FILE", help="the message body, sent as it is ('-' reads stdin)")
    common(send_message)
    send_message.set_defaults(func=_send_message)


def _parameter(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


LOCAL_SQL_GENERATOR_KEY_PARAMETER = "/queryall/local/sql-generator-api-key"


def _sql_generator_parameters(args: argparse.Namespace) -> dict[str, str]:
    """The question-mode options as the template parameters they stand for."""
    values = {"SqlGenerator": args.sql_generator, "SqlGeneratorUrl": args.sql_generator_url,
              "SqlGeneratorModel": args.sql_generator_model,
              "SqlGeneratorTimeoutSeconds": None if args.sql_generator_timeout is None
              else f"{args.sql_generator_timeout:g}",
              "SqlGeneratorApiKeyParameterName": LOCAL_SQL_GENERATOR_KEY_PARAMETER
              if args.sql_generator_api_key else None}
    return {name: value for name, value in values.items() if value is not None}


def _sql_generator_secrets(args: argparse.Namespace) -> dict[str, str]:
    # The key goes where the deployed stack keeps it (SSM), never into an environment variable.
    return {LOCAL_SQL_GENERATOR_KEY_PARAMETER: args.sql_generator_api_key} if args.sql_generator_api_key else {}


def _count_databases(tenants_dir: Path) -> int:
    return sum(1 for _ in tenants_dir.glob("*.duckdb"))


def _wait_until_accepting(host: str, port: int, timeout: float = 10.0) -> None:
    with socket.create_connection((host, port), timeout=timeout):
        pass


def _serve(args: argparse.Namespace) -> int:
    tenants_dir = args.tenants_dir or _default_tenants_dir()
    if not tenants_dir.is_dir():
        raise CliError(
            f"tenants dir {tenants_dir} does not exist; create it with: queryall local seed --tenants-dir {tenants_dir}"
        )
    api_key = args.api_key or _default_api_key()
    jwt_options = (args.jwt_issuer, args.jwt_audience, args.jwks_url)
    if any(jwt_options) and not all(jwt_options):
        raise CliError("Bearer tokens need all of --jwt-issuer, --jwt-audience and --jwks-url")
    bearer_tokens = None
    if all(jwt_options):
        from .jwt_auth import BearerTokens

        bearer_tokens = BearerTokens(*jwt_options)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The stack's own lines get a handler of their own: Powertools' Logger (service "queryall", built when a
    # function is first loaded) filters every record whose logger name contains "queryall" off the root
    # logger's handlers, which silenced every queryall_local line (events included) from then on.
    own = logging.StreamHandler(sys.stderr)
    own.setFormatter(logging.root.handlers[0].formatter if logging.root.handlers else None)
    local_logger = logging.getLogger(__package__)
    local_logger.addHandler(own)
    local_logger.propagate = False
    if not args.verbose:
        logging.getLogger("botocore").setLevel(logging.WARNING)
        logging.getLogger("urllib3").setLevel(logging.WARNING)

    from .faults import Faults, FaultSpecError, LambdaFaults, tenant_faults

    try:
        faults = Faults.parse(args.faults) if args.faults is not None else Faults.from_environment()
    except FaultSpecError as error:
        raise CliError(str(error)) from None
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    overrides = dict(args.parameter)
    overrides.update(_sql_generator_parameters(args))
    from .event_tap import EventForwarder, log_event

    listeners: list[Callable[[dict], None]] = [log_event]
    forwarding = contextlib.ExitStack()
    if args.forward_events:
        try:
            forwarder = EventForwarder(args.forward_events)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        forwarder.start(forwarding)
        listeners.append(forwarder)
    stack = LocalStack(args.template, tenants_dir, api_key, host=args.host, port=args.port,
                       parameter_overrides=overrides, lambda_concurrency=args.lambda_concurrency,
                       secure_parameters=_sql_generator_secrets(args), bearer_tokens=bearer_tokens,
                       event_listeners=listeners, tenants_backend=args.tenants_backend,
                       s3_latency_ms=args.s3_latency_ms)
    from .gateway import PortInUseError

    undo = contextlib.ExitStack()
    try:
        try:
            stack.start()
        except PortInUseError:
            raise CliError(f"port {args.port} on {args.host} is already in use; pick another with --port") from None
        if faults is not None and faults.tenants:
            undo.enter_context(tenant_faults(faults))
            stack.runtime.faults = LambdaFaults(faults)
            print(f"fault injection (local only): {faults.describe()}", file=sys.stderr, flush=True)
        gateway_port = int(stack.url.rsplit(":", 1)[1])
        _wait_until_accepting(args.host, gateway_port)
        print(
            f"queryall local stack ready at {stack.url} - api key {api_key}, admin key {stack.admin_api_key}, "
            f"tenants {tenants_dir} "
            f"({_count_databases(tenants_dir)} databases{', in S3' if args.tenants_backend == 's3' else ''})"
            + (f", bearer tokens from {args.jwt_issuer}" if bearer_tokens else "")
            + f", moto {stack.moto_url}",
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stack.stop()
        undo.close()
        forwarding.close()
        local_logger.removeHandler(own)
        local_logger.propagate = True
    return EXIT_OK


def _seed(args: argparse.Namespace) -> int:
    try:
        from .seed import seed_tenants  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise CliError(f"seeding is not available: {exc}") from None
    tenants_dir = args.tenants_dir or _default_tenants_dir()
    if args.tenants < 1:
        raise CliError("--tenants must be at least 1")
    tenants_dir.mkdir(parents=True, exist_ok=True)
    buckets = seed_tenants(tenants_dir, args.tenants, rows_scale=args.rows_scale)
    print(f"seeded {len(buckets)} tenant databases in {tenants_dir}", flush=True)
    return EXIT_OK


def _read_event(source: str) -> Any:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read event {source}: {exc.strerror or exc}") from None
    try:
        return json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise CliError(f"event {source} is not valid JSON: {exc}") from None


def _invoke(args: argparse.Namespace) -> int:
    event = _read_event(args.event)
    tenants_dir = args.tenants_dir or _default_tenants_dir()
    from .lambda_runtime import error_payload

    stack = LocalStack(args.template, tenants_dir, args.api_key or _default_api_key(), with_gateway=False)
    stack.start()  # reads the template once; nothing runs before the name is checked below
    try:
        functions = stack.spec.functions
        if args.function not in functions:
            names = ", ".join(sorted(functions))
            raise CliError(f"no function {args.function!r} in the template; choose one of: {names}")
        # stdout carries only the result (so it can be piped to jq); handler logs go to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            try:
                result = stack.runtime.invoke(args.function, event)
            except Exception as exc:
                failure = error_payload(exc)
            else:
                failure = None
        stack.runtime.wait_for_background(timeout=30)
    finally:
        stack.stop()
    global _EXIT_AT_ONCE
    _EXIT_AT_ONCE = True
    if failure is not None:
        print(json.dumps(failure, indent=2), flush=True)
        return EXIT_FAILED
    print(json.dumps(result, indent=2), flush=True)
    return EXIT_OK


def _read_text(source: str) -> str:
    try:
        return sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {source}: {exc.strerror or exc}") from None


def _submit_by_event(args: argparse.Namespace, submit: Callable[[LocalStack], dict[str, Any]]) -> int:
    """Run ``submit`` on a stack without the HTTP API, print its outcome as JSON (exit 1: no job made)."""
    tenants_dir = args.tenants_dir or _default_tenants_dir()
    stack = LocalStack(args.template, tenants_dir, args.api_key or _default_api_key(), with_gateway=False)
    stack.start()
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the outcome
            outcome = submit(stack)
    finally:
        stack.stop()
    global _EXIT_AT_ONCE
    _EXIT_AT_ONCE = True
    print(json.dumps(outcome, indent=2), flush=True)
    return EXIT_OK if "job_id" in outcome or "job_ids" in outcome else EXIT_FAILED


def _put_event(args: argparse.Namespace) -> int:
    from .submits import put_event

    event = _read_event(args.file)
    if not isinstance(event, dict):
        raise CliError(f"event {args.file} must be a JSON object")
    return _submit_by_event(args, lambda stack: put_event(stack, event))


def _send_message(args: argparse.Namespace) -> int:
    from .submits import send_message

    body = _read_text(args.file)
    if not body:
        raise CliError(f"message {args.file} is empty (SQS refuses an empty body)")
    return _submit_by_event(args, lambda stack: send_message(stack, body))


# --------------------------------------------------------------------------------------------
# entry point

_COMMANDS: list[Callable[[Any], None]] = [_add_local, add_client_commands]
# Set by a one-shot command whose stack has stopped: nothing is left to tear down but the interpreter.
_EXIT_AT_ONCE = False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="queryall", description="queryall: one SQL query across every tenant database"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _COMMANDS:
        add(subparsers)
    return parser


def _user_error(exc: BaseException) -> bool:
    """A problem the user can fix: ours, or a template/runtime error (their modules are loaded if raised)."""
    kinds: list[type[BaseException]] = [CliError]
    for module, name in (("template", "TemplateError"), ("lambda_runtime", "RuntimeConfigError")):
        loaded = sys.modules.get(f"{__package__}.{module}")
        if loaded is not None:
            kinds.append(getattr(loaded, name))
    return isinstance(exc, tuple(kinds))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except Exception as exc:
        if not _user_error(exc):
            raise
        print(f"queryall: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def run() -> NoReturn:
    """The ``queryall`` entry point (and ``python -m queryall_local``): :func:`main`, then exit.

    After ``local invoke`` the stack is stopped and the result written; tearing down the ~1,000
    modules it loaded would add a third to the command's time, so the process ends at once.
    """
    code = main()
    if _EXIT_AT_ONCE:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise SystemExit(code)
