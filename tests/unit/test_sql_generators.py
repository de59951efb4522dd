"""The SQL generators against real wire shapes: an OpenAI-compatible HTTP server on 127.0.0.1, Bedrock's
Converse API through botocore's Stubber, and MotherDuck's prompt_sql through a connection seam; then
question -> checked SQL with the real SQL guard."""

from __future__ import annotations

import time

import boto3
import pytest
from botocore.stub import ANY, Stubber

from queryall.dal.sql_generators import (
    BedrockGenerator,
    GeneratorFailed,
    MotherDuckGenerator,
    NoGeneratorConfigured,
    OpenAiCompatibleGenerator,
    build_prompt,
    sql_generator,
)
from queryall.errors import GenerationFailed
from queryall.logic.schema_context import build_schema_context
from queryall.logic.sql_generation import SqlRefused, generate_sql
from queryall.logic.sql_guard import SqlRejected, check_read_only_select
from queryall.settings import Settings
from tests.fake_sql_generator import GOOD_SQL, FakeSqlGenerator
from tests.unit.test_schema_context import CATALOG

CONTEXT = build_schema_context(CATALOG)


def guard(sql: str) -> str:
    try:
        return check_read_only_select(sql)
    except SqlRejected as rejection:
        raise SqlRefused(str(rejection)) from None


class MemoryCache:
    def __init__(self) -> None:
        self.items: dict[str, tuple[str, list[str], int]] = {}

    def get(self, key: str, now: float) -> tuple[str, list[str]] | None:
        item = self.items.get(key)
        return None if item is None or item[2] <= now else (item[0], item[1])

    def put(self, key: str, sql: str, tables: list[str], expires_at: int) -> None:
        self.items[key] = (sql, tables, expires_at)


@pytest.fixture
def fake():
    with FakeSqlGenerator(slow_seconds=5) as server:
        yield server


def ask(generator, question: str, cache=None) -> str:
    return generate_sql(question, CONTEXT, generator, guard, cache=cache, now=time.time(),
                        cache_ttl_seconds=3600).sql


# ------------------------------------------------------------------------------------------- openai

def test_openai_good_sql_with_the_schema_and_question_in_the_request(fake) -> None:
    generator = OpenAiCompatibleGenerator(fake.url, "tiny-model", "sk-test-key", timeout_seconds=5)
    generated = generate_sql("how many people?", CONTEXT, generator, guard, cache=None, now=time.time(),
                             cache_ttl_seconds=3600)
    assert generated.sql == GOOD_SQL and generated.tables == ["person"] and not generated.cached
    request = fake.requests["people"]
    assert request["model"] == "tiny-model" and request["temperature"] == 0
    system, user = request["messages"]
    assert system["role"] == "system" and "read-only SELECT" in system["content"]
    assert CONTEXT.text.strip() in user["content"] and user["content"].endswith("Question: how many people?")
    assert fake.headers["people"]["Authorization"] == "Bearer sk-test-key"
    assert "sk-test-key" not in repr(generator)


def test_openai_sql_in_prose(fake) -> None:
    assert ask(OpenAiCompatibleGenerator(fake.url, "m", None, 5), "people, in prose please") == GOOD_SQL


@pytest.mark.parametrize(("question", "reason"), [
    ("delete everyone", "refused by the SQL guard: only read-only SELECT queries are allowed; got DELETE"),
    ("count people of the other tenant", "refused by the SQL guard: table warehouse_other.person names "
                                         "another database"),
    ("two statements", "the answer held 2 SQL statements, not one"),
    ("nothing to say", "the answer held no SQL"),
    ("refuse this", "the generator refused to answer"),
    ("garbage", "malformed response from the generator"),
    ("malformed", "malformed response from the generator"),
    ("broken", "the generator failed (HTTP 500)"),
    ("busy", "the generator is throttling requests (HTTP 429)"),
])
def test_openai_failures_say_which_and_never_the_body(fake, question: str, reason: str) -> None:
    with pytest.raises(GenerationFailed) as failure:
        ask(OpenAiCompatibleGenerator(fake.url, "m", "sk-live-123", 5), question)
    assert failure.value.message.startswith("Could not generate SQL: ")
    assert reason in failure.value.message
    assert "secret-internal-detail" not in failure.value.message and "sk-live-123" not in failure.value.message


def test_openai_retries_a_5xx_and_a_429_once(fake) -> None:
    for question, key in (("broken", "broken"), ("busy", "busy")):
        with pytest.raises(GenerationFailed):
            ask(OpenAiCompatibleGenerator(fake.url, "m", None, 5), question)
        assert fake.calls[key] == 2


def test_openai_slow_answer_times_out_within_the_bound(fake) -> None:
    started = time.monotonic()
    with pytest.raises(GenerationFailed, match=r"Could not generate SQL: timeout \(no answer within 1 s\)"):
        ask(OpenAiCompatibleGenerator(fake.url, "m", None, 1), "slow please")
    assert time.monotonic() - started < 2.5


def test_unreachable_endpoint() -> None:
    with pytest.raises(GeneratorFailed, match="could not be reached"):
        OpenAiCompatibleGenerator("http://127.0.0.1:9/v1", "m", None, 2).generate(build_prompt("q", "TABLE t"))


def test_the_cache_answers_the_same_question_without_asking_again(fake) -> None:
    generator, cache = OpenAiCompatibleGenerator(fake.url, "m", None, 5), MemoryCache()
    assert ask(generator, "how many people?", cache) == ask(generator, " how many people? ", cache) == GOOD_SQL
    assert fake.calls["people"] == 1
    other_schema = build_schema_context(CATALOG, table="person")
    generate_sql("how many people?", other_schema, generator, guard, cache=cache, now=time.time(), cache_ttl_seconds=1)
    assert fake.calls["people"] == 2  # another schema version is another item
    assert generate_sql("how many people?", CONTEXT, generator, guard, cache=cache, now=time.time() + 7200,
                        cache_ttl_seconds=1).cached is False  # expired


def test_no_schema_known_fails_before_asking(fake) -> None:
    with pytest.raises(GenerationFailed, match="no tenant schema is known"):
        generate_sql("q", build_schema_context([]), OpenAiCompatibleGenerator(fake.url, "m", None, 5), guard,
                     cache=None, now=time.time(), cache_ttl_seconds=1)
    assert sum(fake.calls.values()) == 0


# ------------------------------------------------------------------------------------------ bedrock

def converse_response(text: str, stop: str = "end_turn") -> dict:
    return {"output": {"message": {"role": "assistant", "content": [{"text": text}]}}, "stopReason": stop,
            "usage": {"inputTokens": 812, "outputTokens": 21, "totalTokens": 833}, "metrics": {"latencyMs": 420}}


@pytest.fixture
def bedrock():
    client = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"


def test_bedrock_converse_request_carries_schema_and_question(bedrock) -> None:
    client, stubber = bedrock
    prompt = build_prompt("total payments by currency?", CONTEXT.text)
    stubber.add_response("converse", converse_response(f"```sql\n{GOOD_SQL}\n```"), {
        "modelId": MODEL,
        "system": [{"text": prompt.system}],
        "messages": [{"role": "user", "content": [{"text": prompt.user}]}],
        "inferenceConfig": {"temperature": 0, "maxTokens": ANY},
    })
    generator = BedrockGenerator(MODEL, 5, client=client)
    generated = generate_sql("total payments by currency?", CONTEXT, generator, guard, cache=None, now=time.time(),
                             cache_ttl_seconds=1)
    assert generated.sql == GOOD_SQL
    assert "TABLE payment" in prompt.user and "Question: total payments by currency?" in prompt.user


def test_bedrock_reports_tokens_and_retries_throttling_once(bedrock) -> None:
    client, stubber = bedrock
    stubber.add_client_error("converse", service_error_code="ThrottlingException", http_status_code=429)
    stubber.add_response("converse", converse_response(GOOD_SQL))
    answer = BedrockGenerator(MODEL, 5, client=client).generate(build_prompt("q", "TABLE person"))
    assert (answer.text, answer.input_tokens, answer.output_tokens) == (GOOD_SQL, 812, 21)


@pytest.mark.parametrize(("errors", "reason"), [
    (["ThrottlingException", "ThrottlingException"], "the generator failed (ThrottlingException, HTTP 429)"),
    (["InternalServerException", "ServiceUnavailableException"], "ServiceUnavailableException, HTTP 503"),
    (["AccessDeniedException"], "the generator failed (AccessDeniedException, HTTP 403)"),
    (["ValidationException"], "the generator failed (ValidationException, HTTP 400)"),
])
def test_bedrock_errors(bedrock, errors: list[str], reason: str) -> None:
    client, stubber = bedrock
    status = {"ThrottlingException": 429, "InternalServerException": 500, "ServiceUnavailableException": 503,
              "AccessDeniedException": 403, "ValidationException": 400}
    for code in errors:
        stubber.add_client_error("converse", service_error_code=code, service_message="detail with secrets",
                                 http_status_code=status[code])
    with pytest.raises(GeneratorFailed) as failure:
        BedrockGenerator(MODEL, 5, client=client).generate(build_prompt("q", "TABLE person"))
    assert reason in failure.value.reason and "secrets" not in failure.value.reason


def test_bedrock_refusal_and_malformed_answers(bedrock) -> None:
    client, stubber = bedrock
    stubber.add_response("converse", converse_response("I can't", stop="content_filtered"))
    stubber.add_response("converse", {"output": {"message": {"role": "assistant", "content": []}},
                                      "stopReason": "end_turn", "usage": {"inputTokens": 1, "outputTokens": 0,
                                                                          "totalTokens": 1},
                                      "metrics": {"latencyMs": 1}})
    generator = BedrockGenerator(MODEL, 5, client=client)
    with pytest.raises(GeneratorFailed, match="refused"):
        generator.generate(build_prompt("q", "TABLE person"))
    with pytest.raises(GenerationFailed, match="the answer held no SQL"):
        generate_sql("q", CONTEXT, generator, guard, cache=None, now=time.time(), cache_ttl_seconds=1)


# --------------------------------------------------------------------------------------- motherduck

class FakeMotherDuck:
    """The `md:` backend's session seam: records what is run, answers prompt_sql."""

    template = "md:warehouse_{bucket}"

    def __init__(self, answer: object = (GOOD_SQL,), delay: float = 0.0) -> None:
        self.answer, self.delay, self.executed, self.interrupted = answer, delay, [], False

    def open_session(self) -> FakeMotherDuck:
        return self

    def use(self, con: object, bucket: str) -> str:
        self.executed.append(f"USE warehouse_{bucket}")
        return f"warehouse_{bucket}"

    def execute(self, sql: str) -> FakeMotherDuck:
        self.executed.append(sql)
        deadline = time.monotonic() + self.delay
        while time.monotonic() < deadline and not self.interrupted:
            time.sleep(0.01)
        if self.interrupted:
            raise RuntimeError("INTERRUPT Error: Interrupted!")
        return self

    def fetchone(self) -> object:
        return self.answer

    def interrupt(self) -> None:
        self.interrupted = True

    def close(self) -> None:
        pass


def test_motherduck_prompt_sql_on_the_first_target() -> None:
    backend = FakeMotherDuck()
    prompt = build_prompt("how many people?", CONTEXT.text, CONTEXT.buckets[0])
    assert MotherDuckGenerator(backend, 5).generate(prompt).text == GOOD_SQL
    assert backend.executed == ["USE warehouse_acme", "CALL prompt_sql('how many people?')"]
    backend.executed.clear()
    MotherDuckGenerator(backend, 5).generate(build_prompt("O'Brien's people?", "T", "acme"))
    assert backend.executed[1] == "CALL prompt_sql('O''Brien''s people?')"


def test_motherduck_timeout_and_malformed() -> None:
    prompt = build_prompt("q", "TABLE person", "acme")
    with pytest.raises(GeneratorFailed, match="timeout"):
        MotherDuckGenerator(FakeMotherDuck(delay=5), 0.2).generate(prompt)
    with pytest.raises(GeneratorFailed, match="malformed"):
        MotherDuckGenerator(FakeMotherDuck(answer=None), 5).generate(prompt)


# ------------------------------------------------------------------------------------------ settings

def test_generator_from_settings() -> None:
    with pytest.raises(NoGeneratorConfigured, match=r"no SQL generator is configured \(set SqlGenerator\)"):
        sql_generator(Settings())
    with pytest.raises(NoGeneratorConfigured, match="SqlGeneratorModel"):
        sql_generator(Settings(sql_generator="bedrock"))
    with pytest.raises(NoGeneratorConfigured, match="SqlGeneratorUrl"):
        sql_generator(Settings(sql_generator="openai", sql_generator_model="m"))
    with pytest.raises(NoGeneratorConfigured, match="not md: databases"):
        sql_generator(Settings(sql_generator="motherduck", tenant_databases="/tmp/warehouse_{bucket}.duckdb"))
    bedrock = sql_generator(Settings(sql_generator="bedrock", sql_generator_model=MODEL))
    assert isinstance(bedrock, BedrockGenerator) and bedrock.model_id == MODEL and bedrock.timeout_seconds == 20
    openai = sql_generator(Settings(sql_generator="openai", sql_generator_model="m", sql_generator_url="http://x/v1",
                                    sql_generator_timeout_seconds=3))
    assert isinstance(openai, OpenAiCompatibleGenerator) and openai.timeout_seconds == 3
    assert openai.identity != bedrock.identity


def test_a_client_error_is_not_retried(fake) -> None:
    with pytest.raises(GeneratorFailed, match=r"the generator rejected the request \(HTTP 404\)"):
        OpenAiCompatibleGenerator(fake.url + "/wrong", "m", None, 5).generate(build_prompt("how many people", "T"))
    assert fake.calls["people"] == 1
