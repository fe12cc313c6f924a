"""The console in front of a TLS cluster with bearer tokens: sign-in, role gating and CSRF.

One cluster per module (n1..n3 with --tls-dir and --tokens-file, no executor: jobs stay QUEUED),
one console with the same certificates and tokens file, and plain HTTP clients standing in for
browsers. Plus the refusal to serve beyond loopback without TLS, checked without binding.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from integration.cluster import BIN, Cluster, state_name, wait_for

from raftsched.client import Client
from raftsched.config import resolve_tls
from raftsched.security import certs
from raftsched.v1 import jobs_pb2

from .harness import ConsoleProcess

pytestmark = [pytest.mark.integration]

TOKENS = {
    "admin": "console-admin-token-0f3a9c1e7b2d",
    "submitter": "console-submitter-token-6d1e8b4a",
    "reader": "console-reader-token-2c7f9a0e5b13",
    "executor": "console-executor-token-9b4e1d7c3a",
}
CSRF_RE = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@dataclass
class TLSCluster(Cluster):
    tls_dir: Path = Path()

    def client(self, *nids: str, timeout: float = 10.0) -> Client:
        addresses = [self.addr[n] for n in (nids or self.ids)]
        client = Client(addresses, timeout=timeout, tls=resolve_tls(tls_dir=str(self.tls_dir), role="client"))
        self._clients.append(client)
        return client


@dataclass
class Secured:
    cluster: TLSCluster
    console: ConsoleProcess
    opened: list[httpx.Client] = field(default_factory=list)

    def browser(self) -> httpx.Client:
        """A cookie jar and connection, like one browser's (closed after the test)."""
        http = httpx.Client(base_url=self.console.url, follow_redirects=False, timeout=10)
        self.opened.append(http)
        return http

    def close_browsers(self) -> None:
        while self.opened:
            self.opened.pop().close()

    def signed_in(self, role: str) -> httpx.Client:
        http = self.browser()
        response = http.post("/login", data={"token": TOKENS[role], "next": "/", "csrf": csrf(http.get("/login"))})
        assert response.status_code == 303, response.text
        return http

    def queued_job(self) -> jobs_pb2.Job:
        return self.cluster.submit(name="wait-here", handler="noop")


def csrf(page: httpx.Response) -> str:
    match = CSRF_RE.search(page.text)
    assert match, f"no CSRF token in {page.url} ({page.status_code})"
    return match.group(1)


@pytest.fixture(scope="module")
def _secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    root = tmp_path_factory.mktemp("console-tls")
    tls = root / "tls"
    certs.init_dir(tls)
    tokens = root / "tokens.toml"
    tokens.write_text("[tokens]\n" + "".join(f'"{t}" = "{r}"\n' for r, t in TOKENS.items()))
    tokens.chmod(0o600)
    cluster = TLSCluster(root, node_flags=("--tls-dir", str(tls), "--tokens-file", str(tokens)), tls_dir=tls)
    console = ConsoleProcess(cluster.cluster, root / "console.log",
                             extra=("--tls-dir", str(tls), "--tokens-file", str(tokens)))
    try:
        cluster.start_all()
        cluster.wait_leader(30)
        console.start()
        yield Secured(cluster, console)
    except BaseException:
        print(cluster.logs(), console.tail(60))
        raise
    finally:
        console.stop()
        cluster.close()


@pytest.fixture
def secured(_secured: Secured) -> Iterator[Secured]:
    try:
        yield _secured
    finally:
        _secured.close_browsers()


def test_pages_ask_for_a_token(secured: Secured) -> None:
    http = secured.browser()
    response = http.get("/jobs")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=%2Fjobs"
    assert http.get("/jobs?partial=1").status_code == 401
    page = http.get("/login")
    assert page.status_code == 200 and 'type="password" name="token"' in page.text
    assert "Insecure mode" not in page.text


def test_unknown_and_executor_tokens_cannot_sign_in(secured: Secured) -> None:
    http = secured.browser()
    token = csrf(http.get("/login"))
    bad = http.post("/login", data={"token": "not-a-token-of-this-cluster", "csrf": token})
    assert bad.status_code == 401 and "unknown token" in bad.text
    executor = http.post("/login", data={"token": TOKENS["executor"], "csrf": token})
    assert executor.status_code == 401 and "cannot use the console" in executor.text
    assert http.get("/").status_code == 303  # still not signed in


def test_sign_in_form_needs_its_csrf_token(secured: Secured) -> None:
    http = secured.browser()
    http.get("/login")
    response = http.post("/login", data={"token": TOKENS["admin"]})
    assert response.status_code == 403 and "CSRF" in response.text
    assert http.get("/").status_code == 303


def test_reader_can_read_but_cannot_cancel(secured: Secured) -> None:
    job = secured.queued_job()
    reader = secured.signed_in("reader")
    page = reader.get(f"/jobs/{job.id}")
    assert page.status_code == 200 and "signed in as <b>reader</b>" in page.text
    assert 'data-action="cancel"' not in page.text  # the button is shown disabled, with no form
    response = reader.post(f"/jobs/{job.id}/cancel", data={"csrf": csrf(page)})
    assert response.status_code == 403 and "your role (reader) may not cancel jobs" in response.text
    assert state_name(secured.cluster.get(job.id)) == "QUEUED"
    submit = reader.post("/jobs", data={"csrf": csrf(page), "handler": "noop"})
    assert submit.status_code == 403


def test_a_form_without_its_csrf_token_is_refused(secured: Secured) -> None:
    job = secured.queued_job()
    admin = secured.signed_in("admin")
    page = admin.get(f"/jobs/{job.id}")
    assert 'data-action="cancel"' in page.text
    assert admin.post(f"/jobs/{job.id}/cancel", data={}).status_code == 403
    other = secured.signed_in("admin")  # another session's token is no good here either
    stolen = csrf(other.get(f"/jobs/{job.id}"))
    assert admin.post(f"/jobs/{job.id}/cancel", data={"csrf": stolen}).status_code == 403
    cross_site = admin.post(f"/jobs/{job.id}/cancel", data={"csrf": csrf(page)},
                            headers={"Origin": "https://evil.example"})
    assert cross_site.status_code == 403
    assert state_name(secured.cluster.get(job.id)) == "QUEUED"
    done = admin.post(f"/jobs/{job.id}/cancel", data={"csrf": csrf(page)})
    assert done.status_code == 303, done.text
    assert state_name(secured.cluster.get(job.id)) == "CANCELLED"
    assert "token:" in secured.cluster.get(job.id).state_reason  # who did it, never the token itself


def test_submitter_may_submit_but_not_transfer_leadership(secured: Secured) -> None:
    submitter = secured.signed_in("submitter")
    token = csrf(submitter.get("/"))
    created = submitter.post("/jobs", data={"csrf": token, "handler": "noop", "name": "by-submitter"})
    assert created.status_code == 303 and "ok=submitted" in created.headers["location"]
    refused = submitter.post("/leader/transfer", data={"csrf": token})
    assert refused.status_code == 403 and "may not transfer leadership" in refused.text


def test_admin_transfers_leadership(secured: Secured) -> None:
    c = secured.cluster
    old = c.wait_leader()
    target = next(n for n in c.ids if n != old)
    admin = secured.signed_in("admin")
    page = admin.get("/")
    assert 'data-action="transfer"' in page.text
    done = admin.post("/leader/transfer", data={"csrf": csrf(page), "target": target})
    assert done.status_code == 303 and "ok=transferred" in done.headers["location"], done.text
    wait_for(lambda: c.leader() == target, 20, f"{target} leads")


def test_a_console_without_tls_refuses_to_serve_beyond_loopback(tmp_path: Path) -> None:
    result = subprocess.run([str(BIN), "console", "--listen", "0.0.0.0:18080", "--cluster", "127.0.0.1:1"],
                            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, check=False)
    assert result.returncode == 2
    assert "--insecure" in result.stderr and "docs/security.md" in result.stderr
    assert "Traceback" not in result.stderr
