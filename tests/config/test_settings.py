"""Production settings: no start without a secret key, HTTPS enforced, and Django's deploy checks clean."""

import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.processes import ROOT, VENV_BIN, procfile_command

pytestmark = pytest.mark.django_db(transaction=True)


def production_env(**overrides: str) -> dict[str, str]:
    """The environment of a production process: config.settings, DEBUG off, nothing the test run set."""
    kept = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SECRET_KEY", "SECURE_", "SESSION_", "CSRF_", "DEBUG", "DJANGO_", "TEST_", "STATIC_"))
    }
    path = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**kept, "PATH": path, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "0", **overrides}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_with_debug_off_and_no_secret_key_manage_py_refuses_to_start_with_one_clear_line():
    result = manage("check", env=production_env())

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3


def test_with_debug_off_and_no_secret_key_gunicorn_stops_at_once_with_the_reason(tmp_path):
    log = tmp_path / "web.log"
    with log.open("wb") as out:
        process = subprocess.run(
            ["/bin/sh", "-c", procfile_command("web")],
            env=production_env(PORT="0"),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=60,
        )

    text = log.read_text()
    assert process.returncode != 0
    assert "SECRET_KEY" in text
    assert "Traceback" not in text


def test_with_debug_on_a_development_key_is_used():
    result = manage("check", env=production_env(DEBUG="1"))

    assert result.returncode == 0, result.stderr


# docs/operations.md's production: one public host name behind a TLS proxy, PostgreSQL, a real site URL and a
# metrics token; and the bare defaults with nothing but the secret key.
DEPLOYED = {
    "ALLOWED_HOSTS": "events.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://events.example.com",
    "MICE_SITE_URL": "https://events.example.com",
    "DATABASE_URL": "postgres://mice@db.internal:5432/mice",
    "MICE_TRUSTED_PROXIES": "1",
    "MICE_METRICS_TOKEN": "a-long-random-metrics-token",
}


@pytest.mark.parametrize("deployment", [{}, DEPLOYED], ids=["defaults", "as-documented"])
def test_check_deploy_finds_nothing_to_warn_about_under_the_production_defaults(deployment):
    env = production_env(SECRET_KEY=secrets.token_urlsafe(50), **deployment)

    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


def test_check_deploy_does_flag_a_weak_secret_key_so_the_clean_run_above_means_something():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env(SECRET_KEY="short"))

    assert result.returncode != 0
    assert "security.W009" in result.stdout + result.stderr


def request(url: str, **headers: str) -> tuple[int, dict[str, str]]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}


def test_production_redirects_to_https_and_behind_the_proxy_sends_hsts_and_secure_cookies(system, database_url):
    base_url = system.web(**production_env(SECRET_KEY=secrets.token_urlsafe(50), DATABASE_URL=database_url))

    plain_status, plain_headers = request(f"{base_url}/api/docs/")
    proxied_status, proxied_headers = request(f"{base_url}/admin/login/", **{"X-Forwarded-Proto": "https"})

    assert plain_status == 301 and plain_headers["location"].startswith("https://")
    assert proxied_status == 200
    assert "max-age=" in proxied_headers["strict-transport-security"]
    assert "includeSubDomains" in proxied_headers["strict-transport-security"]
    cookie = proxied_headers["set-cookie"]
    assert "csrftoken=" in cookie and "Secure" in cookie
