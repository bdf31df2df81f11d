"""VERIFY against a stand-in for the CDN in front of moto (cdnstub.py): a
clean deploy verifies; each fault a visitor would meet (a cache's old bytes,
a wrong type, a 403, a deleted path still served) fails the run with its
hint after every path was checked, and the deploy stands."""

import datetime
import json
from pathlib import Path

import jsonschema
import pytest

from cdnstub import CdnStub
from conftest import base_env, make_site, run_pipe

SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "report.schema.json").read_text())

V1 = {
    "index.html": "<h1>home v1",
    "docs/index.html": "<h1>docs v1",
    "assets/app.js": "let app = 1;\n" * 200,
    "assets/old.css": "body { color: red }",
    "robots.txt": "User-agent: *",
}


@pytest.fixture
def cdn(s3, bucket):
    stubs = []

    def make(**options):
        stub = CdnStub(s3, bucket, **options)
        stubs.append(stub)
        return stub

    yield make
    for stub in stubs:
        stub.close()


def second_deploy(tmp_path, deploy, stub, before=lambda stub: None, **extra):
    """Deploys V1, changes it (a page edited, an asset replaced, one added,
    one deleted), then deploys again with VERIFY through `stub`."""
    site = make_site(tmp_path / "site", V1)
    first = deploy(site, DELETE_FLAG="true")
    assert first.returncode == 0, first.output
    (site / "index.html").write_text("<h1>home v2")
    (site / "docs/index.html").write_text("<h1>docs v2")
    (site / "assets/app.js").write_text("let app = 2;\n" * 200)
    (site / "assets/new.js").write_text("let n = 1;")
    (site / "assets/old.css").unlink()
    before(stub)
    report = tmp_path / "report.json"
    proc = deploy(site, DELETE_FLAG="true", VERIFY="true", VERIFY_URL=stub.url, REPORT_FILE=str(report), **extra)
    data = json.loads(report.read_text())
    jsonschema.validate(data, SCHEMA)
    return proc, data


def results(report):
    return {p["path"]: (p["result"], [k["kind"] for k in p["problems"]]) for p in report["verification"]["paths"]}


FINE = ("as deployed", [])


@pytest.mark.parametrize("missing", [404, 403])
def test_a_clean_deploy_verifies_as_a_browser_sees_it(tmp_path, deploy, cdn, missing):
    # A CDN that compresses with brotli what S3 stores uncompressed, and
    # serves a folder's index document at the folder's URL.
    stub = cdn(missing=missing, index="index.html", compress=True)
    proc, report = second_deploy(tmp_path, deploy, stub, INDEX_DOCUMENT="index.html", CACHE_CONTROL="max-age=60")
    assert proc.returncode == 0, proc.output
    paths = ["/", "/assets/app.js", "/assets/new.js", "/assets/old.css", "/docs/", "/docs/index.html", "/index.html", "/robots.txt"]
    assert results(report) == {p: FINE for p in paths}
    v = report["verification"]
    assert v["url"] == stub.url and v["failed"] == 0 and v["requests"] == len(paths)
    # robots.txt only got its new Cache-Control, fixed in place: checked too.
    fixed = [p["path"] for p in v["paths"] if p["action"] == "update headers"]
    assert fixed == ["/robots.txt"]
    assert v["deleted_status"] == [missing]
    assert f"Deleted paths answer {missing}" in proc.output
    assert f"✔ Verified {len(paths)} paths through {stub.url}: every one served as deployed" in proc.output
    assert any(t["phase"] == "verify" for t in report["timings"])
    for path, headers in stub.requests:
        assert headers["accept-encoding"] == "br, gzip", headers
        assert headers["user-agent"].startswith("s3-cloudfront-deploy/")
        assert not [h for h in headers if h in ("authorization", "cookie") or h.startswith("x-amz-")], headers
    # Answers were brotli-compressed by the stand-in, and still compared.
    assert stub.bytes_served < 2400


FAULTS = {
    "old bytes": (
        lambda stub: stub.freeze("/index.html"),
        "/index.html",
        "Hint: old bytes: other bytes than the deployed object's: a cache still holds the old version",
    ),
    "wrong type": (
        lambda stub: stub.wrong_type("/assets/new.js", "text/plain"),
        "/assets/new.js",
        "Hint: wrong type: headers other than the deploy set: check the rules (RULES, RULES_FILE)",
    ),
    "forbidden": (
        lambda stub: stub.status("/assets/app.js", 403),
        "/assets/app.js",
        "Hint: forbidden: 403 for a deployed object: the origin refuses to read it. Check the origin access control (OAC) and the bucket policy",
    ),
    "still served": (
        lambda stub: stub.freeze("/assets/old.css"),
        "/assets/old.css",
        "Hint: still served: a deleted path still answers: a cache still holds it",
    ),
}


@pytest.mark.parametrize("kind", FAULTS)
def test_each_fault_is_reported_with_its_hint_and_fails_the_run(tmp_path, deploy, cdn, s3, bucket, kind):
    inject, path, hint = FAULTS[kind]
    stub = cdn()
    proc, report = second_deploy(tmp_path, deploy, stub, before=inject)
    assert proc.returncode == 1, proc.output
    found = results(report)
    assert found.pop(path) == ("mismatch", [kind])
    assert all(v == FINE for v in found.values()), found
    assert report["verification"]["failed"] == 1 and report["success"] is False
    # Asked again while it might have been a slow edge: 1 + 3 requests.
    (checked,) = [p for p in report["verification"]["paths"] if p["path"] == path]
    assert checked["attempts"] == 4
    line = next(l for l in proc.output.splitlines() if l.startswith(f"ERROR: verify: {stub.url}{path} "))
    assert f": {kind}: expected " in line and ", served " in line, line
    assert hint in proc.output
    assert "Verification failed: 1 of 5 paths are not served as deployed. The deploy itself succeeded and is not undone" in proc.output
    # The deploy stands.
    assert s3.get_object(Bucket=bucket, Key="index.html")["Body"].read() == b"<h1>home v2"
    if kind in ("old bytes", "still served"):
        assert "[X-Cache: Hit from cloudfront; Age: 120]" in line, line


def test_a_redirect_is_reported_not_followed(tmp_path, deploy, cdn):
    stub = cdn()
    proc, report = second_deploy(
        tmp_path, deploy, stub, before=lambda s: s.redirect("/index.html", "https://www.example.com/index.html")
    )
    assert proc.returncode == 1, proc.output
    assert results(report)["/index.html"] == ("mismatch", ["redirect"])
    assert "redirect: expected 200, served 301 to https://www.example.com/index.html" in proc.output
    assert [p for p, _ in stub.requests].count("/index.html") == 1


def test_verify_needs_a_url_or_a_distribution(tmp_path, moto, bucket):
    site = make_site(tmp_path / "site", {"index.html": "x"})
    proc = run_pipe(base_env(moto, S3_BUCKET=bucket, LOCAL_PATH=str(site), VERIFY="true"))
    assert proc.returncode == 1
    assert "✖ Validation errors:" in proc.output
    assert "VERIFY_URL:\n- required and not set: with VERIFY and no DISTRIBUTION_ID" in proc.output
    assert "Deploying" not in proc.output


def certificates(folder, authority="verify test CA"):
    """A certificate authority and a certificate for localhost it signed:
    (CA file, certificate file, key file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    name = lambda cn: x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def issue(subject, key, issuer, issuer_key, ca):
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = issue(name(authority), ca_key, name(authority), ca_key, True)
    leaf = issue(name("localhost"), key, ca.subject, ca_key, False)
    pem = lambda cert: cert.public_bytes(serialization.Encoding.PEM)
    files = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    files[0].write_bytes(pem(ca))
    files[1].write_bytes(pem(leaf) + pem(ca))
    files[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


def test_https_with_the_system_s_certificate_authorities(tmp_path, deploy, cdn):
    """The site over TLS, as CloudFront serves it: trusted through the CA
    bundle the image carries (here SSL_CERT_FILE), refused when another CA
    signed it."""
    ca, cert, key = certificates(tmp_path)
    stub = cdn(tls=(str(cert), str(key)))
    assert stub.url.startswith("https://localhost:")
    proc, report = second_deploy(tmp_path, deploy, stub, SSL_CERT_FILE=str(ca))
    assert proc.returncode == 0, proc.output
    assert report["verification"]["passed"] == 5
    site = tmp_path / "site"
    (site / "index.html").write_text("<h1>home v3")
    (tmp_path / "other").mkdir()
    other_ca, _, _ = certificates(tmp_path / "other", "another CA")
    untrusted = deploy(site, VERIFY="true", VERIFY_URL=stub.url, VERIFY_TIMEOUT="3s", SSL_CERT_FILE=str(other_ca))
    assert untrusted.returncode == 1, untrusted.output
    line = next(l for l in untrusted.output.splitlines() if l.startswith("ERROR: verify: "))
    assert "/index.html (upload): unreachable: expected an answer, served GET " in line, line
    assert "invalid peer certificate: UnknownIssuer" in line, line
