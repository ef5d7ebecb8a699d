"""Secrets, as pachctl has them: created from Kubernetes Secret manifests, named by pipelines
(``transform.secrets``: files at ``mount_path`` or a variable from ``key``), and never shown."""

from __future__ import annotations

import base64
import json
import os
import stat
from typing import Any

import pytest
from pipeline_helpers import Pipes, bwrap_usable, pfs_input

TOKEN = "s3cr3t-t0ken-value"
PASSWORD = "hunter2-password"
MANIFEST = f"""apiVersion: v1
kind: Secret
metadata:
  name: creds
type: Opaque
data:
  token: {base64.b64encode(TOKEN.encode()).decode()}
stringData:
  password: {PASSWORD}
"""


def spec(secrets: list[dict[str, str]], cmd: str, **extra: Any) -> dict[str, Any]:
    return {"pipeline": {"name": "uses"}, "input": pfs_input("in"),
            "transform": {"cmd": ["sh", "-c", cmd], "secrets": secrets}, **extra}


def no_value_in(text: str) -> None:
    assert TOKEN not in text and PASSWORD not in text


def test_secrets_are_created_listed_and_never_shown(tusk: Any) -> None:
    tusk.write("secret.yaml", MANIFEST)
    r = tusk("create", "secret", "-f", "secret.yaml")
    assert r.returncode == 0, r.stderr
    listed = json.loads(tusk.ok("list", "secret", "--raw"))
    assert [(s["name"], s["type"], s["keys"]) for s in listed] == [("creds", "Opaque", ["password", "token"])]
    for out in (tusk.ok("list", "secret"), tusk.ok("inspect", "secret", "creds"),
                tusk.ok("inspect", "secret", "creds", "--raw"), r.stdout, r.stderr):
        no_value_in(out)
    # Stored readable by the owner only.
    d = tusk.root / "secrets"
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(d / "creds.json").st_mode) == 0o600
    no_value_in((d / "creds.json").read_text())  # base64 at rest, as Kubernetes keeps it

    # Refusals: one line each, nothing changed.
    assert "already exists" in tusk.fail("create", "secret", "-f", "secret.yaml")
    tusk.write("bad.yaml", MANIFEST.replace("kind: Secret", "kind: ConfigMap"))
    assert 'kind: must be "Secret"' in tusk.fail("create", "secret", "-f", "bad.yaml")
    tusk.write("bad64.yaml", MANIFEST.replace("token: ", "token: '%%%"))
    line = tusk.fail("create", "secret", "-f", "bad64.yaml")
    assert "not JSON or YAML at line" in line, line  # where, never the text around it
    no_value_in(line)
    assert base64.b64encode(TOKEN.encode()).decode()[:8] not in line
    tusk.write("bad64.yaml", MANIFEST.replace("token: ", "token: '%%%'  # "))
    assert "data.token: not base64" in tusk.fail("create", "secret", "-f", "bad64.yaml")
    assert "secret nope not found" in tusk.fail("inspect", "secret", "nope")
    assert [s["name"] for s in json.loads(tusk.ok("list", "secret", "--raw"))] == ["creds"]
    tusk.ok("delete", "secret", "creds")
    assert json.loads(tusk.ok("list", "secret", "--raw")) == []


@pytest.mark.skipif(not bwrap_usable(), reason="files at mount_path need the sandbox")
def test_pipelines_get_secrets_as_files_and_variables_and_nothing_leaks(tusk: Any) -> None:
    p = Pipes(tusk)
    p.repo("in", {"/a": "x"})
    tusk.write("secret.yaml", MANIFEST)
    tusk.ok("create", "secret", "-f", "secret.yaml")
    cmd = ('test "$(cat /secrets/creds/token)" = "$EXPECT_TOKEN" && test "$TOKEN" = "$EXPECT_TOKEN"'
           ' && test "$(cat /secrets/creds/password)" = "$EXPECT_PW"'
           ' && ! touch /secrets/creds/token 2>/dev/null && echo ok > /pfs/out/checked'
           ' && echo "the code may print what it likes"')
    s = spec([{"name": "creds", "mount_path": "/secrets/creds"},
              {"name": "creds", "env_var": "TOKEN", "key": "token"}], cmd)
    s["transform"]["env"] = {"EXPECT_TOKEN": TOKEN, "EXPECT_PW": PASSWORD}
    p.create(s)
    p.wait("uses@master")
    assert p.text_tree("uses@master") == {"/checked": "ok\n"}
    # What tusk shows and keeps never holds a value (the spec's own env aside).
    spec_shown = json.loads(p.ok("inspect", "pipeline", "uses", "--raw"))["spec"]["transform"]
    assert spec_shown["secrets"][0] == {"name": "creds", "mount_path": "/secrets/creds"}
    log = (tusk.root / "controller.log").read_text() if (tusk.root / "controller.log").exists() else ""
    no_value_in(log)
    assert "may print" in p.logs("uses")


def test_a_missing_secret_or_key_refuses_create_and_a_deleted_one_fails_the_job(tusk: Any) -> None:
    p = Pipes(tusk)
    p.repo("in", {"/a": "x"})
    line = tusk.fail("create", "pipeline", "-f", str(p.spec_file(
        spec([{"name": "creds", "env_var": "TOKEN", "key": "token"}], "true"))))
    assert "secret creds not found" in line, line
    tusk.write("secret.yaml", MANIFEST)
    tusk.ok("create", "secret", "-f", "secret.yaml")
    line = tusk.fail("create", "pipeline", "-f", str(p.spec_file(
        spec([{"name": "creds", "env_var": "TOKEN", "key": "nokey"}], "true"))))
    assert "has no key 'nokey'" in line and "password, token" in line, line
    assert p.raw("list", "pipeline") == []
    assert [r["name"] for r in p.raw("list", "repo")] == ["in"]

    # Created with the secret there; the secret deleted; the next job fails saying why.
    p.create(spec([{"name": "creds", "env_var": "TOKEN", "key": "token"}],
                  'test "$TOKEN" = ' + TOKEN + " && echo ok > /pfs/out/ok"))
    p.wait("uses@master")
    tusk.ok("delete", "secret", "creds")
    p.put("in", {"/b": "y"})
    p.wait("uses@master", ok=False)
    job = p.job("uses")
    assert job["state"] == "FAILURE" and "secret creds not found" in job["reason"], job


def test_the_process_runtime_says_it_cannot_mount_secret_files(tusk: Any) -> None:
    p = Pipes(tusk, runner="process")
    p.repo("in", {"/a": "x"})
    tusk.write("secret.yaml", MANIFEST)
    tusk.ok("create", "secret", "-f", "secret.yaml")
    p.create(spec([{"name": "creds", "mount_path": "/secrets/creds"}], "true"))
    p.wait("uses@master", ok=False)
    assert "the process runtime has no file system of its own" in p.job("uses")["reason"]
