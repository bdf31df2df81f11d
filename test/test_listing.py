"""The listing splits a prefix into concurrent folder listings only when it
is large: a small site keeps the LIST requests a sequential listing makes
(counted at moto, which pages 1,000 keys as S3 does). Large trees are in
the unit tests (src/edge/listing.rs) and scripts/bench_list.py."""

import pytest

from conftest import make_site


def list_requests(requests):
    return [r for r in requests if r["method"] == "GET" and "list-type=2" in r["url"]]


@pytest.mark.parametrize(
    "files, lists",
    [
        # 500 objects and the manifest: one page.
        (500, 1),
        # 1,999 and the manifest, 2,000 keys: two pages, and the folder
        # listing sent with the second in case there were more.
        (1999, 3),
    ],
)
def test_a_small_site_keeps_its_few_list_requests(moto, deploy, tmp_path, files, lists):
    site = make_site(tmp_path / "site", {f"d{i % 40}/f{i}.html": f"{i}" for i in range(files)})
    first = deploy(site, prefix="site")
    assert first.returncode == 0, first.output
    with moto.record() as requests:
        again = deploy(site, prefix="site")
    assert again.returncode == 0, again.output
    listed = list_requests(requests)
    assert len(listed) == lists, [r["url"] for r in listed]
    # Nothing was missed: an incomplete listing would upload again.
    assert not [r for r in requests if r["method"] == "PUT" and "manifest" not in r["url"]]
