"""Where Phoenix is, if anywhere: `--phoenix URL`, else the environment, else a `.env` file.

Read through evaluator/settings.py: PHOENIX_COLLECTOR_ENDPOINT (the collector; unset: no export),
PHOENIX_API_KEY, PHOENIX_PROJECT_NAME and CTXEVAL_OTLP_TIMEOUT (the table is there and in the README).
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import settings as ctxeval_settings

DEFAULT_PROJECT: str = ctxeval_settings.default("PHOENIX_PROJECT_NAME")
DEFAULT_EXPORT_TIMEOUT_SECONDS: float = ctxeval_settings.default("CTXEVAL_OTLP_TIMEOUT")
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
    get = ctxeval_settings.get
    endpoint = flag or get("PHOENIX_COLLECTOR_ENDPOINT")
    if not endpoint:
        return None
    return PhoenixSettings(endpoint=traces_endpoint(endpoint),
                           project_name=project_name or get("PHOENIX_PROJECT_NAME"),
                           api_key=get("PHOENIX_API_KEY"),
                           export_timeout_seconds=get("CTXEVAL_OTLP_TIMEOUT"))
