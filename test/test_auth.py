"""Credentials: Bitbucket OIDC first, access keys otherwise, secrets never
printed. moto's STS accepts any token and keeps what it issued, so the tests
prove from the server's side which credentials signed the S3 calls."""

import base64
import json
import re
import urllib.parse
import urllib.request

from conftest import STATIC_KEY_ID, STATIC_SECRET, base_env, bucket_contents, client, make_site, run_pipe

ROLE = "arn:aws:iam::123456789012:role/bitbucket-deploy"


def jwt(claims):
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT', 'kid': 'k1'})}.{part(claims)}.{'s' * 86}"


TOKEN = jwt(
    {
        "iss": "https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc",
        "aud": "ari:cloud:bitbucket::workspace/0000-1111",
        "sub": "{repo-uuid}:{step-uuid}",
        "exp": 4102444800,
    }
)


def signing_key_ids(requests):
    ids = set()
    for r in requests:
        auth = {k.lower(): v for k, v in r["headers"].items()}.get("authorization", "")
        m = re.search(r"Credential=([^/]+)/", auth)
        if m:
            ids.add(m.group(1))
    return ids


def assumed_roles(moto):
    data = json.loads(urllib.request.urlopen(moto.endpoint + "/moto-api/data.json").read())
    return data["sts"]["AssumedRole"]


def sts_calls(requests):
    calls = []
    for r in requests:
        body = r.get("body") or b""
        # STS forms are text; other bodies (the gzip-compressed manifest) need not be.
        body = body.decode(errors="replace") if isinstance(body, bytes) else body
        form = dict(urllib.parse.parse_qsl(body))
        if form.get("Action") == "AssumeRoleWithWebIdentity":
            calls.append(form)
    return calls


def oidc_env(moto, bucket, site, **extra):
    pipeline = {
        "S3_BUCKET": bucket,
        "LOCAL_PATH": str(site),
        "AWS_OIDC_ROLE_ARN": ROLE,
        "BITBUCKET_STEP_OIDC_TOKEN": TOKEN,
        "BITBUCKET_REPO_SLUG": "my-site",
        "BITBUCKET_BUILD_NUMBER": "123",
    }
    return base_env(moto, **{**pipeline, **extra})


def test_oidc_deploy_signs_s3_calls_with_the_assumed_role(tmp_path, private_moto):
    moto, s3, bucket = private_moto, client(private_moto, "s3"), "oidc-proof"
    s3.create_bucket(Bucket=bucket)
    site = make_site(tmp_path, {"index.html": "<p>oidc"})
    # Static keys are present too, as repository variables often are: OIDC wins.
    env = oidc_env(moto, bucket, site)
    with moto.record() as requests:
        proc = run_pipe(env)
    assert proc.returncode == 0, proc.output
    assert "INFO: Authenticating with a OpenID Connect (OIDC) Web Identity Provider" in proc.output
    assert "are ignored: OIDC takes precedence" in proc.output

    calls = sts_calls(requests)
    assert len(calls) == 1, calls
    assert calls[0]["WebIdentityToken"] == TOKEN
    assert calls[0]["RoleArn"] == ROLE
    assert calls[0]["RoleSessionName"] == "bitbucket-my-site-123"
    assert calls[0]["DurationSeconds"] == "3600"

    issued = [r for r in assumed_roles(moto) if r["session_name"] == "bitbucket-my-site-123"]
    s3_requests = [r for r in requests if "AssumeRoleWithWebIdentity" not in str(r.get("body"))]
    signers = signing_key_ids(s3_requests)
    assert signers == {issued[-1]["access_key_id"]}, (signers, issued)
    assert STATIC_KEY_ID not in signers
    assert bucket_contents(s3, bucket) == {"index.html": b"<p>oidc"}


def test_session_name_and_duration_can_be_set(tmp_path, moto, bucket):
    site = make_site(tmp_path, {"a.txt": "a"})
    env = oidc_env(moto, bucket, site, AWS_ROLE_SESSION_NAME="release 1.2/web", AWS_ROLE_DURATION_SECONDS="900")
    with moto.record() as requests:
        proc = run_pipe(env)
    assert proc.returncode == 0, proc.output
    (call,) = sts_calls(requests)
    assert (call["RoleSessionName"], call["DurationSeconds"]) == ("release-1.2-web", "900")


def test_role_without_token_warns_and_falls_back_to_keys(tmp_path, moto, bucket):
    site = make_site(tmp_path, {"a.txt": "a"})
    env = oidc_env(moto, bucket, site)
    del env["BITBUCKET_STEP_OIDC_TOKEN"]
    with moto.record() as requests:
        proc = run_pipe(env)
    assert proc.returncode == 0, proc.output
    assert 'WARNING: Parameter "oidc: true" in the step configuration is required for OIDC authentication' in proc.output
    assert sts_calls(requests) == []
    assert signing_key_ids(requests) == {STATIC_KEY_ID}


def test_role_without_token_or_keys_says_to_add_oidc_true(tmp_path, moto, bucket):
    site = make_site(tmp_path, {"a.txt": "a"})
    env = oidc_env(moto, bucket, site)
    for var in ("BITBUCKET_STEP_OIDC_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        del env[var]
    with moto.record() as requests:
        proc = run_pipe(env)
    assert proc.returncode == 1
    assert "✖ Validation errors:" in proc.output
    assert 'AWS_OIDC_ROLE_ARN:\n- is set but BITBUCKET_STEP_OIDC_TOKEN is not: add "oidc: true" to the step' in proc.output
    assert requests == []


def test_malformed_role_arn_is_caught_before_any_call(tmp_path, moto, bucket):
    site = make_site(tmp_path, {"a.txt": "a"})
    with moto.record() as requests:
        proc = run_pipe(oidc_env(moto, bucket, site, AWS_OIDC_ROLE_ARN="bitbucket-deploy"))
    assert proc.returncode == 1
    assert "AWS_OIDC_ROLE_ARN:\n- \"bitbucket-deploy\" is not an IAM role ARN" in proc.output
    assert requests == []


def test_no_credentials_in_a_pipeline_is_a_validation_error(tmp_path, moto, bucket):
    site = make_site(tmp_path, {"a.txt": "a"})
    env = base_env(moto, S3_BUCKET=bucket, LOCAL_PATH=str(site), BITBUCKET_BUILD_NUMBER="9")
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    proc = run_pipe(env)
    assert proc.returncode == 1
    assert "AWS_ACCESS_KEY_ID:\n- no AWS credentials" in proc.output


def test_unreachable_sts_is_a_clear_error_not_a_hang(tmp_path, moto, bucket):
    site = make_site(tmp_path, {"a.txt": "a"})
    proc = run_pipe(oidc_env(moto, bucket, site, AWS_ENDPOINT_URL_STS="http://127.0.0.1:9"))
    assert proc.returncode == 1
    assert "✖ AssumeRoleWithWebIdentity for " + ROLE + " failed: Unreachable" in proc.output
    assert "Hint: STS could not be reached" in proc.output


def test_debug_output_never_shows_a_secret(tmp_path, private_moto):
    moto, bucket = private_moto, "secrets"
    client(moto, "s3").create_bucket(Bucket=bucket)
    site = make_site(tmp_path, {"a.txt": "a", "b.html": "b"})
    session_token = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN"
    for extra in ({}, {"AWS_OIDC_ROLE_ARN": None}):
        env = oidc_env(moto, bucket, site, DEBUG="true", AWS_SESSION_TOKEN=session_token, DELETE_FLAG="true")
        if "AWS_OIDC_ROLE_ARN" in extra:
            del env["AWS_OIDC_ROLE_ARN"]
        proc = run_pipe(env)
        assert proc.returncode == 0, proc.output
        issued = assumed_roles(moto)
        secrets = [STATIC_SECRET, session_token, TOKEN, TOKEN.split(".")[1]]
        secrets += [r["secret_access_key"] for r in issued] + [r["session_token"] for r in issued]
        for secret in secrets:
            assert secret not in proc.output, "a secret was printed"
        assert STATIC_KEY_ID not in proc.output, "the access key id is shown masked only"
