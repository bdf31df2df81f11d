"""Scan problems in LOCAL_PATH: gathered and reported together, each with its
path and cause, before any write; excluded paths never stop a deploy."""

import json
import os
from pathlib import Path

import jsonschema

from conftest import bucket_contents, make_site, writes

SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "report.schema.json").read_text())


def unreadable_file(path):
    """A file the pipe cannot read, and the system's words for why.

    As a user, a regular file of mode 000. The tests run as root in CI,
    and root reads a mode 000 file anyway; so there it is a link to
    /proc/self/clear_refs, a write-only kernel file (mode 0200) on which
    read() fails with EINVAL whatever the caller's privileges. In the pipe's
    process, /proc/self is the pipe itself."""
    if os.geteuid() != 0:
        path.write_text("secret")
        path.chmod(0)
        return "Permission denied"
    os.symlink("/proc/self/clear_refs", path)
    try:
        path.read_bytes()
    except OSError as e:
        return e.strerror
    raise AssertionError("/proc/self/clear_refs was readable: no honest unreadable file for root here")


def broken_site(root):
    site = make_site(root, {"index.html": "<h1>home", "docs/guide.html": "guide", "assets/app.js": "app"})
    os.symlink("../missing", site / "docs/old")
    os.symlink("/nowhere/logo.png", site / "assets/logo.png")
    os.symlink("..", site / "docs/up")
    why = unreadable_file(site / "secret.txt")
    return site, why


def test_every_scan_problem_is_named_in_one_run_and_nothing_is_written(tmp_path, deploy, s3, bucket, moto):
    s3.put_object(Bucket=bucket, Key="old.html", Body=b"would be deleted")
    site, why = broken_site(tmp_path / "site")
    report = tmp_path / "report.json"
    with moto.record() as requests:
        proc = deploy(site, DELETE_FLAG="true", REPORT_FILE=str(report))
    assert proc.returncode == 1, proc.output
    assert writes(requests) == [], writes(requests)
    assert bucket_contents(s3, bucket) == {"old.html": b"would be deleted"}
    expected = [
        "- broken symbolic link: assets/logo.png → /nowhere/logo.png",
        "- broken symbolic link: docs/old → ../missing",
        "- symbolic link loop: docs/up → ..",
        f"- unreadable file: secret.txt ({why})",
    ]
    block = "✖ Scan errors (nothing was written):\nLOCAL_PATH:\n" + "\n".join(expected) + "\n"
    assert block in proc.output, proc.output
    assert "Hint: broken symbolic link: " in proc.output and "--no-follow-symlinks" in proc.output
    assert "Hint: unreadable file: " in proc.output

    record = json.loads(report.read_text())
    jsonschema.validate(record, SCHEMA)
    assert record["success"] is False and record["objects"] == []
    assert [(e["path"], e["kind"]) for e in record["scan_errors"]] == [
        ("assets/logo.png", "broken symbolic link"),
        ("docs/old", "broken symbolic link"),
        ("docs/up", "symbolic link loop"),
        ("secret.txt", "unreadable file"),
    ]
    assert [f"- {e['message']}" for e in record["scan_errors"]] == expected


def test_excluded_problems_are_not_reported(tmp_path, deploy, s3, bucket):
    site, _ = broken_site(tmp_path / "site")
    (tmp_path / "rules.yml").write_text('- match: "secret.txt"\n  ignore: true\n')
    proc = deploy(
        site,
        RULES_FILE=str(tmp_path / "rules.yml"),
        EXTRA_ARGS="--exclude 'docs/old' --exclude 'docs/up/*' --exclude 'assets/logo.png'",
    )
    assert proc.returncode == 0, proc.output
    assert "Scan errors" not in proc.output
    assert sorted(bucket_contents(s3, bucket)) == ["assets/app.js", "docs/guide.html", "index.html"]


def test_no_follow_symlinks_skips_dangling_links_and_loops(tmp_path, deploy, s3, bucket):
    site, _ = broken_site(tmp_path / "site")
    proc = deploy(site, EXTRA_ARGS="--no-follow-symlinks --exclude secret.txt")
    assert proc.returncode == 0, proc.output
    # As root, secret.txt is a link too: counted, though excluded.
    links = 4 if os.geteuid() == 0 else 3
    assert f"{links} symbolic links not followed: --no-follow-symlinks" in proc.output, proc.output
    assert sorted(bucket_contents(s3, bucket)) == ["assets/app.js", "docs/guide.html", "index.html"]
