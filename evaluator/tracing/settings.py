"""Where Phoenix is, if anywhere: `--phoenix URL`, else the environment, else a `.env` file.

| variable                    | meaning                                            | default   |
|-----------------------------|----------------------------------------------------|-----------|
| PHOENIX_COLLECTOR_ENDPOINT  | Phoenix (or any OTLP/HTTP collector) base URL      | — (off)   |
| PHOENIX_API_KEY             | sent as a bearer token (Phoenix Cloud, auth)       | —         |
| PHOENIX_PROJECT_NAME        | the Phoenix project the spans land in              | ctxeval   |
| CTXEVAL_OTLP_TIMEOUT        | seconds one export may take before it is dropped   | 10        |
"""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PROJECT = "ctxeval"
DEFAULT_EXPORT_TIMEOUT_SECONDS = 10.0
TRACES_PATH = "/v1/traces"


@dataclass(frozen=True)
class PhoenixSettings:
    endpoint: str  # the OTLP/HTTP traces URL (…/v1/traces)
    project_name: str = DEFAULT_PROJECT
    api_key: str | None = None
    export_timeout_seconds: float = DEFAULT_EXPORT_TIMEOUT_SECONDS

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def describe(self) -> dict[str, str]:
        """What may be written into run.json: never the key."""
        return {"endpoint": self.endpoint, "project_name": self.project_name}


def traces_endpoint(url: str) -> str:
    """Accept Phoenix's base URL or the full OTLP traces URL."""
    url = url.rstrip("/")
    return url if url.endswith(TRACES_PATH) else url + TRACES_PATH


def phoenix_settings(flag: str | None = None, project_name: str | None = None) -> PhoenixSettings | None:
    """The Phoenix to export to, or None when none is configured."""
    from ..models.settings import dotenv_settings, setting  # the same .env rules as the API keys
    dotenv = dotenv_settings()
    endpoint = flag or setting("PHOENIX_COLLECTOR_ENDPOINT", dotenv=dotenv)
    if not endpoint:
        return None
    timeout = setting("CTXEVAL_OTLP_TIMEOUT", dotenv=dotenv)
    return PhoenixSettings(
        endpoint=traces_endpoint(endpoint),
        project_name=project_name or setting("PHOENIX_PROJECT_NAME", DEFAULT_PROJECT, dotenv=dotenv) or DEFAULT_PROJECT,
        api_key=setting("PHOENIX_API_KEY", dotenv=dotenv),
        export_timeout_seconds=float(timeout) if timeout else DEFAULT_EXPORT_TIMEOUT_SECONDS)
