"""The README's client examples (curl, OpenAI SDK, LangChain) run as written against a gateway."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway import config, provider

README = Path(__file__).resolve().parent.parent / "README.md"
README_URL = "http://localhost:2906"
README_KEY = "your-coo-llm-client-key"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def gw(start_gateway, upstream, tmp_path_factory):
    cfg = config(
        [provider("openai", upstream.url, ["sk-upstream"], models=["gpt-4o-mini"])],
        client_keys=[{"key": README_KEY}, {"key": "curl-key"}],
        files={"path": str(tmp_path_factory.mktemp("readme-files"))},
    )
    return start_gateway(cfg)


def as_written(code: str, gw) -> str:
    """The README code pointed at the test gateway instead of localhost:2906, nothing else changed."""
    assert README_URL in code
    return code.replace(README_URL, gw.url)


def run_python(code: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    return out.getvalue()


def test_openai_sdk_example(gw, fake):
    [code] = [b for b in blocks("python") if "from openai import OpenAI" in b and "batches" not in b]
    printed = run_python(as_written(code, gw))
    assert "echo: Say hello" in printed
    assert "echo: Count to five" in printed
    assert "usage: CompletionUsage(" in printed
    assert fake.count("sk-upstream") == 2


def test_langchain_example(gw, fake):
    pytest.importorskip("langchain_openai")
    [code] = [b for b in blocks("python") if "ChatOpenAI" in b]
    assert run_python(as_written(code, gw)).strip() == "echo: Say hello"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_example(gw, fake):
    [command] = [b for b in blocks("sh") if "curl " in b]
    result = subprocess.run(
        ["sh", "-c", as_written(command, gw)], capture_output=True, text=True, env={"COO_CLIENT_KEY": "curl-key", "PATH": "/usr/bin:/bin"}
    )
    assert result.returncode == 0, result.stderr
    assert '"content":"echo: Say hello"' in result.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_client_admin_examples(gw, fake):
    """The admin API's client examples, in order: create, list, show, change, revoke."""
    create, listing, change, revoke = [b for b in blocks("bash") if "/admin/v1/clients" in b]
    env = {"COO_ADMIN_KEY": "admin-secret-key", "PATH": "/usr/bin:/bin"}

    def run(command: str, **extra) -> list[dict]:
        result = subprocess.run(["sh", "-c", as_written(command, gw)], capture_output=True, text=True, env={**env, **extra})
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.replace("}{", "}\n{").splitlines() if line.strip()]

    [made] = run(create)
    assert made["name"] == "team-a" and made["key"].startswith("sk-coo-") and made["budgets"]["usd_per_day"] == 5
    client_id = made["id"]
    listed, shown = run(listing, CLIENT_ID=client_id)
    assert client_id in [c["id"] for c in listed["data"]] and shown["id"] == client_id and "key" not in shown
    [changed] = run(change, CLIENT_ID=client_id)
    assert changed["budgets"] == {"usd_per_day": 10, "usd_per_month": 100} and changed["limits"] == {"req_per_min": 60, "tokens_per_min": None}
    [revoked] = run(revoke, CLIENT_ID=client_id)
    assert revoked["revoked"] is True


def test_batch_example(gw, fake):
    [code] = [b for b in blocks("python") if "client.batches.create" in b]
    printed = run_python(as_written(code, gw))
    assert printed.startswith("completed BatchRequestCounts(")
    assert [line for line in printed.splitlines()[1:]] == ["q-0 echo: Say 0", "q-1 echo: Say 1", "q-2 echo: Say 2"]
    assert fake.count("sk-upstream") == 3


def test_responses_example(gw, fake):
    """The Responses example continues the SDK example (it uses its ``client``)."""
    [setup] = [b for b in blocks("python") if "from openai import OpenAI" in b and "batches" not in b]
    [code] = [b for b in blocks("python") if "client.responses.create" in b]
    printed = run_python(as_written(setup, gw) + "\n" + code)
    assert "echo: Name a prime number." in printed
    assert "echo: Count to five" in printed.rsplit("usage:", 1)[-1]  # the Responses stream, after the chat example's lines
    assert fake.count("sk-upstream") == 2 + 3  # the chat example's two calls, then create, continue and stream
