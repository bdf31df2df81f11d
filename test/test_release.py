"""What users copy must work: the pipe's own pipeline and every pipeline
snippet in the README validate against Atlassian's schema, and one version
(Cargo.toml's) appears everywhere a version is named."""

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT.parent / "shared" / "schemas" / "bitbucket-pipelines.schema.json"
README = (ROOT / "README.md").read_text()
VERSION = re.search(r'^version = "(.+)"', (ROOT / "Cargo.toml").read_text(), re.M).group(1)


@pytest.fixture(scope="module")
def validator():
    assert SCHEMA.exists(), f"Atlassian's schema is expected at {SCHEMA}"
    schema = json.loads(SCHEMA.read_text())
    return jsonschema.Draft7Validator(schema)


def readme_snippets():
    return re.findall(r"```yaml\n(.*?)```", README, re.S)


def as_pipeline(doc):
    """README snippets show either a whole file or a step's `script:`."""
    if "pipelines" in doc:
        return doc
    return {"pipelines": {"default": [{"step": {"name": "Deploy", **doc}}]}}


def errors(validator, doc):
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def test_own_pipeline_validates(validator):
    doc = yaml.safe_load((ROOT / "bitbucket-pipelines.yml").read_text())
    assert errors(validator, doc) == []


def test_every_readme_snippet_validates(validator):
    snippets = readme_snippets()
    assert len(snippets) >= 4
    for snippet in snippets:
        doc = yaml.safe_load(snippet)
        assert errors(validator, as_pipeline(doc)) == [], snippet


def test_the_schema_rejects_a_broken_pipeline(validator):
    broken = {"pipelines": {"default": [{"step": {"script": "not a list"}}]}}
    assert errors(validator, broken)


def test_one_version_everywhere():
    pipe = yaml.safe_load((ROOT / "pipe.yml").read_text())
    assert pipe["image"].endswith(f":{VERSION}")
    refs = re.findall(r"s3-cloudfront-deploy:(\d+\.\d+\.\d+)", README)
    assert refs and set(refs) == {VERSION}, refs
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(r"^## (\S+)", changelog, re.M).group(1) == VERSION


def test_pipe_yml_lets_repository_variables_flow_in():
    pipe = yaml.safe_load((ROOT / "pipe.yml").read_text())
    defaults = {v["name"]: v["default"] for v in pipe["variables"]}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_OIDC_ROLE_ARN"):
        assert defaults[name] == f"${name}"
    assert pipe["category"] == "Deployment"
