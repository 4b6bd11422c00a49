"""`runs.url` in the project's config files and `$PIPELINE_RUNS_URL`: which wins, what is
refused (a password in the committed file, a URL that is not PostgreSQL's), and that any value
a user may write gives a URL or one clear error naming the file, never a crash or a leak."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from unittest import mock

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.exc import OperationalError

from pipeline.core.config import RUNS_URL_ENV, runs_url
from pipeline.errors import ManifestError
from pipeline.runs.runstore import _unreachable, has_store, masked, server_url

SECRETS = st.text("abc", min_size=1, max_size=6).map(lambda t: f"pw-{t}")


def _config(state: Path, text: str, *, local: bool = False) -> None:
    state.mkdir(exist_ok=True)
    (state / ("config.local.yaml" if local else "config.yaml")).write_text(text)


def test_the_environment_wins_over_both_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / ".pipeline"
    monkeypatch.delenv(RUNS_URL_ENV, raising=False)
    assert runs_url(tmp_path) is None and not has_store(state)  # SQLite stays the default
    _config(state, "runs:\n  url: postgresql://team@db/runs\n")
    assert runs_url(state) == "postgresql://team@db/runs" and has_store(state)
    _config(state, "runs:\n  url: postgresql://ann:pw@db/runs\n", local=True)
    assert runs_url(state) == "postgresql://ann:pw@db/runs"  # the local file may hold it
    monkeypatch.setenv(RUNS_URL_ENV, "postgresql://ci@other/runs")
    assert runs_url(state) == "postgresql://ci@other/runs"


def test_a_password_in_the_committed_file_is_refused_without_showing_it(tmp_path: Path) -> None:
    state = tmp_path / ".pipeline"
    _config(state, "runs:\n  url: postgresql://ann:s3cret@db/runs\n")
    with pytest.raises(ManifestError) as caught:
        runs_url(state)
    assert "committed to git" in str(caught.value) and "s3cret" not in str(caught.value)
    assert "config.local.yaml" in (caught.value.hint or "")


def test_urls_for_sqlalchemy_and_for_people() -> None:
    assert server_url("postgresql://a@h/d") == "postgresql+psycopg://a@h/d"
    assert server_url("postgres://a@h/d") == "postgresql+psycopg://a@h/d"
    assert masked("postgresql+psycopg://ann:s3cret@h:5432/d") == ("postgresql://ann:***@h:5432/d")


_VALUES = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda u, p, h: f"postgresql://{u}:{p}@{h}/db",
        st.text(max_size=8),
        SECRETS,
        st.text(max_size=8),
    ),
    st.integers(),
    st.lists(st.text(max_size=5), max_size=3),
    st.none(),
)


@given(_VALUES)
def test_any_url_value_gives_a_url_or_one_clear_error(value: object) -> None:
    with tempfile.TemporaryDirectory() as tmp, mock.patch.dict(os.environ):
        os.environ.pop(RUNS_URL_ENV, None)
        state = Path(tmp)
        (state / "config.yaml").write_text(yaml.safe_dump({"runs": {"url": value}}))
        try:
            found = runs_url(state)
        except ManifestError as exc:
            text = f"{exc} {exc.hint}"
            assert "config.yaml" in text and "Traceback" not in text
            assert "pw-" not in text  # a password is never echoed
            return
        assert found is None or found.split("://")[0] in (
            "postgresql",
            "postgresql+psycopg",
            "postgres",
        )


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://ann@db:1/runs?password=s3cret",  # libpq takes it from the query too
        "postgresql://ann@db/runs?sslmode=require&sslpassword=s3cret",
        "postgresql://ann@db/runs?PassWord=s3cret",
        "postgresql://ann:s3/cret@db/runs",  # SQLAlchemy reads `s3/cret` as the password
        "postgres://ann:s3cret@db/runs",
    ],
)
def test_every_spelling_of_a_password_is_refused_in_the_committed_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.delenv(RUNS_URL_ENV, raising=False)
    state = tmp_path / ".pipeline"
    _config(state, f"runs:\n  url: {url}\n")
    with pytest.raises(ManifestError, match="committed to git") as caught:
        runs_url(state)
    assert "s3" not in f"{caught.value} {caught.value.hint}"
    _config(state, f"runs:\n  url: {url}\n", local=True)
    (state / "config.yaml").unlink()
    assert runs_url(state) == url  # this machine's file may hold it


def test_secrets_in_the_query_are_masked() -> None:
    shown = masked("postgresql+psycopg://ann:s3cret@h/d?sslmode=require&password=p1&SSLPassword=p2")
    assert "s3cret" not in shown and "p1" not in shown and "p2" not in shown
    assert shown.startswith("postgresql://ann:***@h/d?") and "sslmode=require" in shown
    assert "password=***" in shown
    assert masked("postgresql://ann@h:notaport/d?password=p1") == "h:notaport/d"


def test_a_query_secret_in_a_connection_error_is_masked() -> None:
    url = "postgresql+psycopg://ann@h/d?password=p1"
    failure = OperationalError("connect", {}, Exception("auth failed for password p1"))
    error = _unreachable(failure, url)
    assert "p1" not in f"{error} {error.hint}" and "password ***" in str(error)


@pytest.mark.parametrize("local", [False, True])
def test_a_port_that_is_not_a_number_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local: bool
) -> None:
    """It was an internal error (ValueError) in every `pipeline runs`."""
    monkeypatch.delenv(RUNS_URL_ENV, raising=False)
    state = tmp_path / ".pipeline"
    _config(state, "runs:\n  url: postgresql://u:pw-1@h:notaport/db\n", local=local)
    with pytest.raises(ManifestError, match=r"runs\.url is not a valid URL") as caught:
        runs_url(state)
    text = f"{caught.value} {caught.value.hint}"
    assert "config.local.yaml" in text if local else "config.yaml" in text
    assert "pw-1" not in text and "port" in text
    monkeypatch.setenv(RUNS_URL_ENV, "postgresql://u@h:notaport/db")
    with pytest.raises(ManifestError, match=rf"{RUNS_URL_ENV}: runs\.url is not a valid URL"):
        runs_url(state)
