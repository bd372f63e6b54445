"""The OpenAI-compatible chat judge end to end: a real HTTP server on 127.0.0.1, started here,
wraps a tiny local model (tests/fixtures/chat_server.py); the judge talks to it through the
``openai`` client, the same code path as OpenAI's API or a ``vllm serve`` endpoint. No network,
no mock of the client."""

import json

import pytest

from fixtures.chat_server import ChatServer
from repro.errors import InputError
from repro.evaluate.judges import JUDGES, JudgeItem

KEY_ENV, KEY = "TEST_JUDGE_KEY", "sk-test-SECRETSECRETSECRET"


@pytest.fixture(scope="module")
def judge_model(tmp_path_factory):
    from repro.models.tiny import make_tiny_llava

    root = tmp_path_factory.mktemp("judge_model")
    make_tiny_llava(root, seed=1)
    return root


@pytest.fixture(scope="module")
def server(judge_model):
    with ChatServer(judge_model, api_key=KEY) as srv:
        yield srv


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


def _options(server, **extra):
    return {"base_url": server.base_url, "model": server.name, "api_key_env": KEY_ENV, **extra}


def test_chat_judge_scores_a_tiny_siuo_run_through_the_server(server, judge_model, key, tmp_path):
    from repro.data.synthetic import generate
    from repro.evaluate.run import benchmark_stage
    from repro.pipeline.context import StageContext

    generate("siuo", tmp_path / "data", 0, "tiny")
    (tmp_path / "out").mkdir()
    params = {"benchmark": "siuo", "limit": 3, "sampling": {"max_new_tokens": 4},
              "judge_options": _options(server, concurrency=2)}
    ctx = StageContext(experiment="t", name="ev_siuo", kind="evaluate/benchmark", params=params,
                       inputs={"model": judge_model, "data": tmp_path / "data"},  # it answers, it judges
                       out=tmp_path / "out", seed=0, profile="tiny", shared={})
    before = len(server.requests)
    benchmark_stage(ctx)
    sent = server.requests[before:]
    samples = [json.loads(x) for x in (ctx.out / "samples.jsonl").read_text().splitlines()]
    metrics = json.loads((ctx.out / "metrics.json").read_text())
    protocol = json.loads((ctx.out / "protocol.json").read_text())
    asked = [s for s in samples if s["response"] != ""]  # empty responses are judged without a request
    assert len(sent) == len(asked) == 3
    for request, sample in zip(sent, asked):
        text, image = request["body"]["messages"][0]["content"]
        assert sample["meta"]["safety_warning"] in text["text"] and sample["meta"]["reference_answer"] in text["text"]
        assert image["image_url"]["url"].startswith("data:image/png;base64,")
        assert request["body"]["max_tokens"] == 200 and request["body"]["temperature"] == 0
        assert request["authorization"] == f"Bearer {KEY}"
    assert metrics["judge"] == {"name": "siuo_gpt4v", "model_id": "tiny-judge"}
    assert metrics["parse_failures"] == sum(not s["verdict"]["parsed"] for s in samples)
    endpoint = protocol["judge"]["endpoint"]
    assert endpoint["endpoint_kind"] == "openai_compatible" and endpoint["served_models"] == ["tiny-judge-0001"]
    assert endpoint["api_key"] == f"${KEY_ENV}" and protocol["scoring"]["unparsed"] == "official"
    assert protocol["scoring"]["primary"] == "asr" and protocol["scoring"]["source"].startswith("sinwang20/SIUO")
    assert protocol["judge"]["prompts"]["gpt_eval_safe"] == (
        "9f88d13da10699af3956271026c3527cbddb75cbd15c0829b3d5fa6e29bb78f6")
    # the official arithmetic: safe rate = mean of 1 / 0 / -1 scores, asr = 1 - safe rate
    scores = [{"1": 1, "0": 0}.get(s["verdict"]["label"], -1) for s in samples]
    assert metrics["metrics"]["asr"] == pytest.approx(1 - sum(scores) / len(scores))
    for path in ctx.out.rglob("*"):
        assert KEY not in path.read_text(errors="ignore"), path  # the key is never written


def test_mm_safetybench_judge_sends_the_scenario_prompt(server, key):
    judge = JUDGES.get("mm_safetybench_gpt4")(**_options(server))
    before = len(server.requests)
    items = [JudgeItem("q", "Here is how.", category="Political_Lobbying"),
             JudgeItem("q", "Here is how.", category="Illegal_Activitiy")]
    verdicts = judge.judge(items)
    sent = sorted(r["body"]["messages"][0]["content"] for r in server.requests[before:])
    assert len(sent) == 2 and sum("political lobbing" in text for text in sent) == 1  # requests run in parallel
    assert all(v.parsed is (v.raw.strip().lower() in ("safe", "unsafe")) for v in verdicts)
    assert judge.describe()["endpoint"]["system_fingerprints"] == ["fp_tiny"]


def test_endpoint_that_does_not_serve_the_model_fails_before_judging(server, key):
    judge = JUDGES.get("xstest_gpt4")(**_options(server, model="gpt-4"))
    with pytest.raises(InputError, match="does not serve model 'gpt-4'"):
        judge.judge([JudgeItem("q", "r")])


def test_wrong_key_is_a_one_line_error_without_the_key(server, monkeypatch):
    from repro.errors import ReproError

    monkeypatch.setenv(KEY_ENV, "sk-wrong-key-000")
    judge = JUDGES.get("xstest_gpt4")(**_options(server, max_retries=0))
    with pytest.raises(ReproError, match="HTTP 401") as err:
        judge.judge([JudgeItem("q", "r")])
    assert "sk-wrong" not in str(err.value)


def test_openai_endpoint_needs_its_key_from_the_environment(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    judge = JUDGES.get("mm_safetybench_gpt4")()  # official default: gpt-4 on api.openai.com
    assert judge.endpoint.kind == "openai"
    with pytest.raises(InputError, match="OPENAI_API_KEY is not set"):
        judge.judge([JudgeItem("q", "r", category="Fraud")])  # fails before any connection


def test_a_missing_endpoint_model_fails_before_generating(server, key, tmp_path):
    from repro.evaluate.run import benchmark_stage
    from repro.pipeline.context import StageContext

    (tmp_path / "out").mkdir()
    ctx = StageContext(experiment="t", name="ev", kind="evaluate/benchmark",
                       params={"benchmark": "xstest", "judge_options": _options(server, model="gpt-4")},
                       inputs={"model": tmp_path / "no-model", "data": tmp_path / "no-data"},
                       out=tmp_path / "out", seed=0, profile="tiny", shared={})
    with pytest.raises(InputError, match="does not serve model 'gpt-4'"):
        benchmark_stage(ctx)  # neither the model nor the data is read first


def test_plan_names_the_judge_and_the_scoring_protocol():
    from repro.evaluate.plan import describe_stage

    judge, scoring = describe_stage("evaluate/benchmark", {"benchmark": "mm_safetybench"}, {"model": "m"})
    assert judge.startswith("judge: mm_safetybench_gpt4 (chat endpoint https://api.openai.com/v1, model gpt-4")
    assert "unparsed official" in scoring and "isXinLiu/MM-SafetyBench evaluation.py" in scoring
    lines = describe_stage("evaluate/benchmark", {"benchmark": "wildjailbreak"}, {"judge": "judge_wildguard"})
    assert lines[0] == "judge: wildguard (model allenai/wildguard bound as input judge=judge_wildguard)"
    assert describe_stage("evaluate/benchmark", {"benchmark": "seed_bench", "extractor": "llava_exact"}, {})[0] \
        .startswith("scoring: seed_bench v2, extractor llava_exact")
    assert describe_stage("train/sft", {}, {}) == []
