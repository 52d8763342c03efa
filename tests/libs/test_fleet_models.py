"""The tracking server's client of `paved status --tracking`: where a login may go, and the
sparkline. Reading a real server is tested in tests/update/test_status.py."""

from __future__ import annotations

import pytest
from paved._errors import PavedError
from paved.fleet.models import TrackingServer, tracking_server
from paved.fleet.status import sparkline

pytestmark = pytest.mark.libs

LOGIN = {"MLFLOW_TRACKING_USERNAME": "platform", "MLFLOW_TRACKING_PASSWORD": "secret"}


@pytest.mark.parametrize(
    ("uri", "env", "refusal"),
    [
        ("http://mlflow.example", LOGIN, "a login goes to https URLs only"),
        ("http://mlflow.example", {"MLFLOW_TRACKING_TOKEN": "t"}, "https URLs only"),
        ("sqlite:///mlflow.db", {}, r"give the server's http\(s\) URL"),
        ("https://", {}, r"give the server's http\(s\) URL"),
    ],
)
def test_a_tracking_uri_that_would_leak_or_is_no_server_is_refused(
    uri: str, env: dict[str, str], refusal: str
) -> None:
    with pytest.raises(PavedError, match=refusal):
        TrackingServer(uri, env)


def test_a_login_goes_over_https_or_to_this_machine() -> None:
    assert TrackingServer("https://mlflow.example/", LOGIN).uri == "https://mlflow.example"
    assert TrackingServer("http://127.0.0.1:5000", LOGIN).uri == "http://127.0.0.1:5000"
    assert TrackingServer("http://mlflow.example", {}).uri == "http://mlflow.example"


def test_the_environment_names_the_server_only_when_it_is_a_server() -> None:
    assert tracking_server(None, {"MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}) is None
    assert tracking_server(None, {}) is None
    found = tracking_server(None, {"MLFLOW_TRACKING_URI": "https://mlflow.example"})
    assert found is not None and found.uri == "https://mlflow.example"
    flag = tracking_server("https://other.example", {"MLFLOW_TRACKING_URI": "https://x.example"})
    assert flag is not None and flag.uri == "https://other.example"


def test_the_sparkline_runs_from_the_lowest_to_the_highest_figure() -> None:
    assert sparkline([]) == ""
    assert sparkline([0.5]) == "▄"
    assert sparkline([0.8, 0.95, 0.9]) == "▁█▆"
    assert sparkline([1, 1, 1]) == "▄▄▄"
