"""The deploy manifest: header-only changes fixed in place, exact skips
without HeadObject, and a fallback to HeadObject only where it is needed."""

import json

from conftest import MANIFEST, bucket_contents, make_site, site_writes, writes

FILES = {f"page{i}.html": f"<p>{i}" for i in range(8)} | {f"a/{i}.js": f"js {i}" for i in range(8)}


def heads(requests):
    return [r for r in requests if r["method"] == "HEAD"]


def puts(requests):
    """PutObject and UploadPart requests to the site (not CopyObject)."""
    return [
        r
        for r in site_writes(requests)
        if r["method"] == "PUT" and "x-amz-copy-source" not in {k.lower() for k in r["headers"]}
    ]


def copies(requests):
    return [r for r in site_writes(requests) if "x-amz-copy-source" in {k.lower() for k in r["headers"]}]


def test_header_only_change_is_fixed_in_place(tmp_path, deploy, s3, bucket, moto):
    site = make_site(tmp_path / "site", FILES)
    assert deploy(site, CACHE_CONTROL="max-age=60").returncode == 0
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=MANIFEST)["Body"].read())
    assert sorted(manifest["objects"]) == sorted(FILES)
    with moto.record() as requests:
        proc = deploy(site, CACHE_CONTROL="max-age=3600", REPORT_FILE=str(tmp_path / "report.json"))
    assert proc.returncode == 0, proc.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert [o["action"] for o in report["objects"]].count("update headers") == len(FILES)
    assert report["totals"]["headers_updated"] == len(FILES)
    assert puts(requests) == [], "no re-upload"
    assert len(copies(requests)) == len(FILES)
    assert heads(requests) == [], "the manifest vouches for every object"
    assert all(s3.head_object(Bucket=bucket, Key=k)["CacheControl"] == "max-age=3600" for k in FILES)
    assert bucket_contents(s3, bucket) == {k: v.encode() for k, v in FILES.items()}
    assert "same content, headers changed: fixed in place" in proc.output
    with moto.record() as requests:
        assert deploy(site, CACHE_CONTROL="max-age=3600").returncode == 0
    assert writes(requests) == [] and heads(requests) == []


def test_objects_overwritten_by_another_tool_cost_one_head_each(tmp_path, deploy, s3, bucket, moto):
    site = make_site(tmp_path, FILES)
    assert deploy(site).returncode == 0
    # Someone re-uploads 5 objects, same bytes, as a multipart upload: new
    # ETags the manifest does not know, and boto3's own Content-Type.
    touched = sorted(FILES)[:5]
    for key in touched:
        mpu = s3.create_multipart_upload(Bucket=bucket, Key=key)
        part = s3.upload_part(Bucket=bucket, Key=key, UploadId=mpu["UploadId"], PartNumber=1, Body=FILES[key].encode())
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=mpu["UploadId"], MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]}
        )
    with moto.record() as requests:
        proc = deploy(site)
    assert proc.returncode == 0, proc.output
    assert len(heads(requests)) == 5
    assert puts(requests) == []
    assert sorted(r["url"].split("?")[0].rsplit("/", 1)[-1] for r in copies(requests)) == sorted(
        k.rsplit("/", 1)[-1] for k in touched
    )
    with moto.record() as requests:
        assert deploy(site).returncode == 0
    assert writes(requests) == [] and heads(requests) == []


def test_without_the_manifest_headers_come_from_head_object(tmp_path, deploy, s3, bucket, moto):
    site = make_site(tmp_path, FILES)
    assert deploy(site, MANIFEST="false").returncode == 0
    assert MANIFEST not in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    with moto.record() as requests:
        proc = deploy(site, MANIFEST="false", CACHE_CONTROL="no-cache")
    assert proc.returncode == 0, proc.output
    assert len(heads(requests)) == len(FILES)
    assert len(copies(requests)) == len(FILES) and puts(requests) == []


def test_manifest_is_neither_deleted_nor_invalidated_and_can_be_renamed(tmp_path, deploy, s3, bucket):
    site = make_site(tmp_path, {"index.html": "x"})
    proc = deploy(site, prefix="p", DELETE_FLAG="true", MANIFEST_KEY="meta/deploy.json")
    assert proc.returncode == 0, proc.output
    assert "p/meta/deploy.json" in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    proc = deploy(site, prefix="p", DELETE_FLAG="true", MANIFEST_KEY="meta/deploy.json")
    assert proc.returncode == 0 and "delete:" not in proc.output, proc.output
