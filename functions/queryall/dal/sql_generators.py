"""The SQL generators a question can be sent to, chosen by the `SqlGenerator` setting.

* `bedrock`: Amazon Bedrock's Converse API (boto3 `bedrock-runtime`), model id from the settings;
* `openai`: any OpenAI-compatible chat-completions endpoint (OpenAI, a local llama.cpp server, Ollama,
  vLLM…), base URL and model from the settings, the API key read from SSM or Secrets Manager;
* `motherduck`: MotherDuck's `prompt_sql` on the first target tenant database (`md:` tenants only).

Each asks once with temperature 0, retries once on throttling or a 5xx, and gives up when the whole
generation passes its timeout. Failures are `GeneratorFailed` with a short reason of our own words:
never the generator's error body, never the key.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from queryall.settings import Settings
from queryall.sql_literals import sql_string

PROMPT_FILE = Path(__file__).resolve().parents[1] / "prompts" / "sql_generation.v1.txt"
PROMPT_VERSION = "v1"
MAX_OUTPUT_TOKENS = 1024


class GeneratorFailed(Exception):
    """The generator gave no usable answer; `reason` is safe to show the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Prompt:
    system: str
    user: str
    question: str
    # The first target tenant (MotherDuck's prompt_sql runs on its database).
    first_bucket: str | None = None


@dataclass(frozen=True)
class GeneratorAnswer:
    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None


class SqlGenerator(Protocol):
    name: str

    @property
    def identity(self) -> str:
        """What the SQL cache keys on besides the question and schema: kind, model, endpoint, prompt."""

    def generate(self, prompt: Prompt) -> GeneratorAnswer: ...


@functools.cache
def _prompt_sections() -> tuple[str, str]:
    text = PROMPT_FILE.read_text(encoding="utf-8")
    _, _, rest = text.partition("=== system ===\n")
    system, marker, user = rest.partition("=== user ===\n")
    if not marker or not system.strip() or "{question}" not in user or "{schema_context}" not in user:
        raise RuntimeError(f"{PROMPT_FILE.name} must hold a system and a user section with "
                           "{schema_context} and {question}")
    return system.strip(), user.strip()


def build_prompt(question: str, schema_context: str, first_bucket: str | None = None) -> Prompt:
    """The versioned prompt file filled in with this question and schema."""
    system, user = _prompt_sections()
    filled = user.replace("{schema_context}", schema_context.rstrip()).replace("{question}", question.strip())
    return Prompt(system=system, user=filled, question=question.strip(), first_bucket=first_bucket)


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds

    def left(self) -> float:
        left = self.ends - time.monotonic()
        if left <= 0:
            raise GeneratorFailed(f"timeout (no answer within {self.seconds:g} s)")
        return left


def _with_one_retry(call: Any, retryable: Any, deadline: _Deadline) -> Any:
    """`call(timeout)` once, and once more if it failed in a way `retryable` accepts and time is left."""
    try:
        return call(deadline.left())
    except Exception as error:
        if not retryable(error):
            raise
        time.sleep(min(0.5, max(0.0, deadline.ends - time.monotonic()) / 4))
        return call(deadline.left())


# --------------------------------------------------------------------------------------------- openai

class OpenAiCompatibleGenerator:
    """POST {base_url}/chat/completions, as OpenAI, llama.cpp's server, Ollama and vLLM answer it."""

    name = "openai"

    def __init__(self, base_url: str, model: str, api_key: str | None, timeout_seconds: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._api_key = api_key
        self.timeout_seconds = timeout_seconds

    @property
    def identity(self) -> str:
        return f"openai|{self.base_url}|{self.model}|{PROMPT_VERSION}"

    def __repr__(self) -> str:  # never the key
        return f"OpenAiCompatibleGenerator({self.base_url!r}, {self.model!r})"

    def generate(self, prompt: Prompt) -> GeneratorAnswer:
        import httpx  # only the functions that generate SQL pay for it

        body = {"model": self.model, "temperature": 0, "max_tokens": MAX_OUTPUT_TOKENS,
                "messages": [{"role": "system", "content": prompt.system},
                             {"role": "user", "content": prompt.user}]}
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

        class _Retryable(Exception):
            pass

        def call(timeout: float) -> httpx.Response:
            try:
                response = httpx.post(f"{self.base_url}/chat/completions", json=body, headers=headers,
                                      timeout=timeout)
            except httpx.TimeoutException:
                raise GeneratorFailed(f"timeout (no answer within {self.timeout_seconds:g} s)") from None
            except httpx.HTTPError as error:
                raise GeneratorFailed(f"the generator could not be reached ({type(error).__name__})") from None
            if response.status_code == 429 or response.status_code >= 500:
                raise _Retryable(response.status_code)
            return response

        try:
            response = _with_one_retry(call, lambda e: isinstance(e, _Retryable), _Deadline(self.timeout_seconds))
        except _Retryable as error:
            status = error.args[0]
            raise GeneratorFailed("the generator is throttling requests (HTTP 429)" if status == 429
                                  else f"the generator failed (HTTP {status})") from None
        if response.status_code != 200:
            raise GeneratorFailed(f"the generator rejected the request (HTTP {response.status_code})")
        return _openai_answer(response)


def _openai_answer(response: Any) -> GeneratorAnswer:
    try:
        document = response.json()
        choice = document["choices"][0]
        message = choice["message"]
        usage = document.get("usage") or {}
    except (ValueError, KeyError, IndexError, TypeError):
        raise GeneratorFailed("malformed response from the generator") from None
    if not isinstance(message, dict):
        raise GeneratorFailed("malformed response from the generator")
    if message.get("refusal") or choice.get("finish_reason") == "content_filter":
        raise GeneratorFailed("the generator refused to answer")
    content = message.get("content")
    if isinstance(content, list):  # some servers answer in typed parts: [{"type": "text", "text": …}]
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict)) or None
    if not isinstance(content, str):
        raise GeneratorFailed("malformed response from the generator")
    return GeneratorAnswer(content, _int_or_none(usage.get("prompt_tokens")),
                           _int_or_none(usage.get("completion_tokens")))


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -------------------------------------------------------------------------------------------- bedrock

_BEDROCK_RETRYABLE = {"ThrottlingException", "ServiceUnavailableException", "InternalServerException",
                      "ModelNotReadyException"}


class BedrockGenerator:
    """Amazon Bedrock's Converse API; the function's role may invoke this one model only."""

    name = "bedrock"

    def __init__(self, model_id: str, timeout_seconds: float, client: Any = None) -> None:
        self.model_id = model_id
        self.timeout_seconds = timeout_seconds
        self._client = client

    @property
    def identity(self) -> str:
        return f"bedrock|{self.model_id}|{PROMPT_VERSION}"

    def client(self, timeout: float) -> Any:
        if self._client is not None:
            return self._client
        import boto3
        from botocore.config import Config

        # Retries are ours (one, within the deadline); botocore's own would outlast it.
        config = Config(read_timeout=max(1, int(timeout)), connect_timeout=min(5, max(1, int(timeout))),
                        retries={"mode": "standard", "max_attempts": 1})
        return boto3.client("bedrock-runtime", config=config)

    def generate(self, prompt: Prompt) -> GeneratorAnswer:
        from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

        def call(timeout: float) -> dict:
            try:
                return self.client(timeout).converse(
                    modelId=self.model_id,
                    system=[{"text": prompt.system}],
                    messages=[{"role": "user", "content": [{"text": prompt.user}]}],
                    inferenceConfig={"temperature": 0, "maxTokens": MAX_OUTPUT_TOKENS},
                )
            except (ReadTimeoutError, ConnectTimeoutError):
                raise GeneratorFailed(f"timeout (no answer within {self.timeout_seconds:g} s)") from None
            except ClientError:
                raise
            except BotoCoreError as error:
                raise GeneratorFailed(f"the generator could not be reached ({type(error).__name__})") from None

        def retryable(error: Exception) -> bool:
            return isinstance(error, ClientError) and error.response["Error"].get("Code") in _BEDROCK_RETRYABLE

        try:
            response = _with_one_retry(call, retryable, _Deadline(self.timeout_seconds))
        except ClientError as error:
            code = error.response["Error"].get("Code", "error")
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            raise GeneratorFailed(f"the generator failed ({code}{f', HTTP {status}' if status else ''})") from None
        return _bedrock_answer(response)


def _bedrock_answer(response: dict) -> GeneratorAnswer:
    if response.get("stopReason") in ("content_filtered", "guardrail_intervened"):
        raise GeneratorFailed("the generator refused to answer")
    try:
        content = response["output"]["message"]["content"]
        text = "".join(block["text"] for block in content if "text" in block)
    except (KeyError, TypeError):
        raise GeneratorFailed("malformed response from the generator") from None
    usage = response.get("usage") or {}
    return GeneratorAnswer(text, _int_or_none(usage.get("inputTokens")), _int_or_none(usage.get("outputTokens")))


# ----------------------------------------------------------------------------------------- motherduck

class MotherDuckGenerator:
    """MotherDuck's `prompt_sql` (its own text-to-SQL) on the first target tenant's database.

    It reads that database's schema itself, so our prompt's schema text is not sent; the guard checks its
    SQL as any other. `tenants` is the `md:` backend (its session has the token and `ATTACH 'md:'`)."""

    name = "motherduck"

    def __init__(self, tenants: Any, timeout_seconds: float) -> None:
        self.tenants = tenants
        self.timeout_seconds = timeout_seconds

    @property
    def identity(self) -> str:
        return f"motherduck|{self.tenants.template}"

    def generate(self, prompt: Prompt) -> GeneratorAnswer:
        if prompt.first_bucket is None:
            raise GeneratorFailed("no tenant database to ask (MotherDuck's prompt_sql runs on one)")
        import threading

        try:
            con = self.tenants.open_session()
        except Exception as error:  # the token or the service: its message may hold secrets
            raise GeneratorFailed(f"MotherDuck could not be reached ({type(error).__name__})") from None
        timer = threading.Timer(self.timeout_seconds, con.interrupt)
        timer.start()
        try:
            self.tenants.use(con, prompt.first_bucket)
            # A literal, as the guard passes SQL to DuckDB (a parameter makes DuckDB probe for pandas).
            row = con.execute(f"CALL prompt_sql({sql_string(prompt.question)})").fetchone()
        except Exception as error:
            if not timer.is_alive():
                raise GeneratorFailed(f"timeout (no answer within {self.timeout_seconds:g} s)") from None
            raise GeneratorFailed(f"MotherDuck's prompt_sql failed ({type(error).__name__})") from None
        finally:
            timer.cancel()
            con.close()
        if not row or not isinstance(row[0], str):
            raise GeneratorFailed("malformed response from the generator")
        return GeneratorAnswer(row[0])


# ------------------------------------------------------------------------------------------- settings

def _api_key(settings: Settings) -> str | None:
    from aws_lambda_powertools.utilities import parameters

    if settings.sql_generator_api_key_parameter:
        return str(parameters.get_parameter(settings.sql_generator_api_key_parameter, decrypt=True, max_age=300))
    if settings.sql_generator_api_key_secret:
        return str(parameters.get_secret(settings.sql_generator_api_key_secret, max_age=300))
    return None


class NoGeneratorConfigured(Exception):
    pass


def sql_generator(settings: Settings) -> SqlGenerator:
    """The generator the settings choose; NoGeneratorConfigured (with what is missing) otherwise."""
    kind = settings.sql_generator
    timeout = settings.sql_generator_timeout_seconds
    if kind == "none":
        raise NoGeneratorConfigured("no SQL generator is configured (set SqlGenerator)")
    if kind == "bedrock":
        if not settings.sql_generator_model:
            raise NoGeneratorConfigured("SqlGenerator is bedrock but no model id is configured (set SqlGeneratorModel)")
        return BedrockGenerator(settings.sql_generator_model, timeout)
    if kind == "openai":
        if not settings.sql_generator_url or not settings.sql_generator_model:
            raise NoGeneratorConfigured("SqlGenerator is openai but its URL or model is not configured "
                                        "(set SqlGeneratorUrl and SqlGeneratorModel)")
        return OpenAiCompatibleGenerator(settings.sql_generator_url, settings.sql_generator_model,
                                         _api_key(settings), timeout)
    from queryall.dal.tenant_databases import MotherDuckTenantDatabases, tenant_databases

    tenants = tenant_databases(settings.tenant_databases or "")
    if not isinstance(tenants, MotherDuckTenantDatabases):
        raise NoGeneratorConfigured("SqlGenerator is motherduck but the tenant databases are not md: databases")
    return MotherDuckGenerator(tenants, timeout)
