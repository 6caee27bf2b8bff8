"""Fixed costs of a process that talks to a vendor (issue 16): no CLI stack behind `import httpx`, no CA
bundle loaded for a plain-http (loopback emulator) client, and TLS still verified for https vendors."""
import ssl
import subprocess
import sys

from connectors.http import HttpClient, tls_context_for


def test_importing_the_connectors_leaves_httpx_cli_stack_out():
    code = ("import sys, connectors.http, connectors.registry\n"
            "print(','.join(m for m in ('click', 'rich', 'pygments', 'httpx._main') "
            "if m in sys.modules and getattr(sys.modules[m], '__file__', None)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_httpx_cli_entry_still_explains_itself():
    code = "import connectors, httpx\nhttpx.main()\n"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 1 and "pip install 'httpx[cli]'" in run.stdout   # httpx's own fallback


def test_https_vendor_gets_a_verifying_context_shared_by_clients():
    ctx = tls_context_for("https://api.sendgrid.com")
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.get_ca_certs() or ctx.cert_store_stats()["x509_ca"] > 0   # the CA bundle is loaded
    assert tls_context_for("HTTPS://api.iterable.com") is ctx


def test_plain_http_client_trusts_no_certificate():
    ctx = tls_context_for("http://127.0.0.1:8080")
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.cert_store_stats()["x509_ca"] == 0


def test_clients_are_built_with_those_contexts():
    with HttpClient("sendgrid", "http://127.0.0.1:9") as plain:
        pool = plain._client._transport._pool
        assert pool._ssl_context.cert_store_stats()["x509_ca"] == 0
    with HttpClient("sendgrid", "https://api.sendgrid.com") as tls:
        assert tls._client._transport._pool._ssl_context is tls_context_for("https://api.sendgrid.com")
