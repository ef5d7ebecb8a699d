"""transform.image runs: user code in its pipeline's image, resolved to a digest per job.

Real parts only: images are built with the machine's engine (``docker build`` / ``podman
build``, FROM scratch with busybox), pushed to a real registry on 127.0.0.1, and the pipelines
run through the ``tusk`` CLI with its controller and workers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from image_helpers import Images, engine_cli, engine_clis, login_env, start_registry, unique
from pipeline_helpers import Pipes, bwrap_usable, pfs_input

pytestmark = pytest.mark.skipif(not bwrap_usable(), reason="the image runtime needs bubblewrap")

# The user's code, which exists only in the image: it reports where and as whom it runs.
REPORT = """#!/bin/sh
for f in /pfs/in/*; do
  {
    echo "version=VERSION"
    echo "uid=$(id -u)"
    echo "pwd=$(pwd)"
    echo "greeting=$GREETING"
    echo "job=$PACH_JOB_ID"
    echo "input=$(cat "$f")"
    echo "root=$(ls / | tr '\\n' ' ')"
  } > "/pfs/out/$(basename "$f")"
done
"""


@pytest.fixture(scope="module", params=engine_clis() or [None],
                ids=lambda c: Path(c).name if c else "no-engine")
def images(request: pytest.FixtureRequest) -> Iterator[Images]:
    """Each engine that answers here (Docker Engine, Podman) in turn."""
    imgs = Images(engine_cli(request.param))
    yield imgs
    imgs.cleanup()


@pytest.fixture(autouse=True)
def same_engine(request: pytest.FixtureRequest) -> None:
    """tusk looks in the engine the test built with (TUSK_ENGINE), not the first one found."""
    if "images" in request.fixturenames and "tusk" in request.fixturenames:
        imgs = request.getfixturevalue("images")
        request.getfixturevalue("tusk").env["TUSK_ENGINE"] = Path(imgs.cli).name


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from start_registry(tmp_path_factory.mktemp("registry"))


def code(version: str) -> dict[str, str]:
    return {"/app/report.sh": REPORT.replace("VERSION", version)}


def spec(image: str, **transform: Any) -> dict[str, Any]:
    return {"pipeline": {"name": "report"},
            "transform": {"image": image, "cmd": ["sh", "/app/report.sh"], **transform},
            "input": pfs_input("in")}


def report(p: Pipes, path: str = "/a") -> dict[str, str]:
    text = p.ok("get", "file", f"report@master:{path}")
    return dict(line.split("=", 1) for line in text.splitlines())


def test_code_that_exists_only_in_its_image_runs_unchanged(tusk: Any, images: Images) -> None:
    name = unique("tusk-test/report") + ":1"
    image_id = images.build(name, code("1"), ["ENV GREETING=hello-from-image", "WORKDIR /app"])
    p = Pipes(tusk)
    p.repo("in", {"/a": "alpha"})
    r = tusk("create", "pipeline", "-f", str(p.spec_file(spec(name))))
    assert r.returncode == 0, r.stderr
    assert "no effect" not in r.stderr  # the image is honoured, not ignored
    p.wait("report@master")
    out = report(p)
    assert out["version"] == "1" and out["input"] == "alpha"
    assert out["greeting"] == "hello-from-image"  # the image's ENV
    assert out["pwd"] == "/app"  # the image's WORKDIR
    assert out["uid"] == "65534"  # the image runs as root; here it never is
    assert out["job"] == p.job("report")["id"]  # Pachyderm's variables
    # The code's whole file system is the image's: no host /usr, /root or /home.
    shown = set(out["root"].split())
    assert {"app", "bin", "pfs", "tmp"} <= shown
    assert not shown & {"usr", "root", "home", "work"}, shown
    job = p.job("report")
    assert job["image"] == f"{name.rsplit(':', 1)[0]}@{image_id}"  # only the engine has it


def test_the_specs_env_working_dir_and_user_override_the_images(tusk: Any, images: Images) -> None:
    name = unique("tusk-test/over") + ":1"
    images.build(name, {**code("1"), "/etc/passwd": "root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n"},
                 ["ENV GREETING=image", "WORKDIR /app", "USER app"])
    p = Pipes(tusk)
    p.repo("in", {"/a": "alpha"})
    p.create(spec(name))
    p.wait("report@master")
    out = report(p)
    assert (out["uid"], out["pwd"], out["greeting"]) == ("1000", "/app", "image")  # USER app
    p.update(spec(name, env={"GREETING": "spec"}, working_dir="/bin", user="4321"), "--reprocess")
    p.wait("report@master")
    out = report(p)
    assert (out["uid"], out["pwd"], out["greeting"]) == ("4321", "/bin", "spec")


def test_a_new_push_under_the_same_tag_runs_in_the_next_job_and_lineage_keeps_the_old(
        tusk: Any, images: Images, registry: str) -> None:
    name = f"{registry}/{unique('report')}:latest"
    images.build(name, code("1"))
    first = images.push(name)
    images.remove(name)  # only the registry has it now: the job pulls it
    p = Pipes(tusk)
    p.repo("in", {"/a": "alpha"})
    p.create(spec(name))
    p.wait("report@master")
    assert report(p)["version"] == "1"
    repo = name.rsplit(":", 1)[0]
    assert p.job("report")["image"] == f"{repo}@{first}"

    # The user edits the code, rebuilds, and pushes under the same tag.
    images.build(name, code("2"))
    second = images.push(name)
    assert second != first
    p.put("in", {"/b": "beta"})
    p.wait("report@master")
    job = p.job("report")
    assert job["image"] == f"{repo}@{second}"
    assert report(p, "/b")["version"] == "2"
    # The unchanged datum was not re-run: its output and its lineage still name the old image.
    assert report(p, "/a")["version"] == "1"
    assert p.raw("lineage", "report@master:/a")["image"] == f"{repo}@{first}"
    assert p.raw("lineage", "report@master:/b")["image"] == f"{repo}@{second}"
    text = p.ok("inspect", "job", f"report@{job['id']}")
    assert f"{repo}@{second}" in text


def test_a_missing_image_is_refused_at_create_and_nothing_is_made(tusk: Any, images: Images,
                                                                  registry: str) -> None:
    p = Pipes(tusk)
    p.repo("in", {"/a": "alpha"})
    before = [r["name"] for r in p.raw("list", "repo")]
    for image in (f"{registry}/nowhere/{unique('x')}:1", unique("tusk-test/absent") + ":1"):
        line = tusk.fail("create", "pipeline", "-f", str(p.spec_file(spec(image))))
        assert f'image "{image}" not found' in line, line
        assert "looked in" in line, line
    assert p.raw("list", "pipeline") == []
    assert [r["name"] for r in p.raw("list", "repo")] == before


def test_an_image_removed_after_create_fails_the_job_with_one_line(tusk: Any, images: Images) -> None:
    name = unique("tusk-test/vanish") + ":1"
    images.build(name, code("1"))
    p = Pipes(tusk)
    p.repo("in", {"/a": "alpha"})
    p.t.env["TUSK_NO_CONTROLLER"] = "1"  # create now, run once the image is gone
    p.create(spec(name))
    images.remove(name)
    p.t.env.pop("TUSK_NO_CONTROLLER")
    p.wait("report@master", ok=False)
    job = p.job("report")
    assert job["state"] == "FAILURE"
    assert f'image "{name}" not found' in job["reason"] and "\n" not in job["reason"]


def test_running_on_the_host_instead_is_an_explicit_choice(tusk: Any, images: Images,
                                                           tmp_path: Path) -> None:
    name = unique("tusk-test/host") + ":1"
    images.build(name, code("1"))
    p = Pipes(tusk, runner="sandbox")  # TUSK_RUNNER=sandbox: the installation says "host"
    p.repo("in", {"/a": "alpha"})
    host_spec = {**spec(name), "transform": {"image": name, "cmd": ["sh", "-c",
                 "ls / > /pfs/out/root"]}}
    r = tusk("create", "pipeline", "-f", str(p.spec_file(host_spec)))
    assert r.returncode == 0, r.stderr
    assert "TUSK_RUNNER chose the sandbox runtime" in r.stderr
    p.wait("report@master")
    assert "usr" in p.ok("get", "file", "report@master:/root").split()  # the host's system
    assert not p.job("report").get("image")
    assert json.loads(p.ok("inspect", "pipeline", "report", "--raw"))["spec"]["transform"]["image"] == name


def test_push_images_tags_uniquely_pushes_and_the_next_update_runs_the_new_code(
        tusk: Any, images: Images, registry: str) -> None:
    local = unique("tusk-test/pushed") + ":dev"
    first_id = images.build(local, code("1"))
    p = Pipes(tusk)
    p.repo("in", {"/a": "alpha"})
    path = p.spec_file(spec(local))
    p.ok("create", "pipeline", "-f", str(path), "--push-images", "--registry", registry)
    repo = f"{registry}/{local.rsplit(':', 1)[0]}"
    pushed = f"{repo}:tusk-{first_id.split(':')[1][:12]}"
    images.made.append(pushed)
    stored = json.loads(p.ok("inspect", "pipeline", "report", "--raw"))["spec"]["transform"]["image"]
    assert stored == pushed  # the spec names the unique tag it pushed, as pachctl does
    p.wait("report@master")
    assert report(p)["version"] == "1"
    first = p.job("report")["image"]
    assert first.startswith(f"{repo}@sha256:")  # from the registry: its manifest digest

    # Edit, rebuild under the same local tag, update with --push-images: a new unique tag.
    second_id = images.build(local, code("2"))
    p.ok("update", "pipeline", "-f", str(path), "--push-images", "--registry", registry)
    images.made.append(f"{repo}:tusk-{second_id.split(':')[1][:12]}")
    p.put("in", {"/b": "beta"})
    p.wait("report@master")
    assert report(p, "/b")["version"] == "2" and report(p, "/a")["version"] == "1"
    assert p.job("report")["image"] not in (first, "")
    assert p.raw("lineage", "report@master:/a")["image"] == first

    # A local image that is not there is refused before anything is pushed or changed.
    line = tusk.fail("update", "pipeline", "-f", str(p.spec_file(spec(unique("tusk-test/no") + ":1"))),
                     "--push-images", "--registry", registry)
    assert "is not in" in line and "docker build -t" in line, line
    assert json.loads(p.ok("inspect", "pipeline", "report", "--raw"))["version"] == 2


def test_build_rebuilds_and_updates_in_one_command_with_no_registry(tusk: Any, images: Images) -> None:
    from image_helpers import BUSYBOX

    name = unique("tusk-test/built")
    p = Pipes(tusk)
    p.repo("in", {"/a": "alpha", "/b": "beta"})
    work = Path(p.t.cwd)
    import shutil

    shutil.copy(BUSYBOX, work / "busybox")
    (work / "report.sh").write_text(REPORT.replace("VERSION", "1"))
    (work / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]\nCOPY report.sh /app/report.sh\n')
    path = p.spec_file(spec(name))
    p.ok("create", "pipeline", "-f", str(path), "--build")
    stored = json.loads(p.ok("inspect", "pipeline", "report", "--raw"))["spec"]["transform"]["image"]
    assert stored.startswith(f"{name}:tusk-")
    images.made.append(stored)
    images.made.append(name)
    p.wait("report@master")
    assert report(p)["version"] == "1"

    (work / "report.sh").write_text(REPORT.replace("VERSION", "2"))
    p.ok("update", "pipeline", "-f", str(path), "--build", "--reprocess")
    stored2 = json.loads(p.ok("inspect", "pipeline", "report", "--raw"))["spec"]["transform"]["image"]
    assert stored2 != stored
    images.made.append(stored2)
    p.wait("report@master")
    assert {report(p, f)["version"] for f in ("/a", "/b")} == {"2"}  # --reprocess: every datum

    # No Dockerfile: one line naming where it looked, nothing changed.
    (work / "Dockerfile").unlink()
    line = tusk.fail("update", "pipeline", "-f", str(path), "--build")
    assert "no Dockerfile at" in line, line
    assert json.loads(p.ok("inspect", "pipeline", "report", "--raw"))["spec"]["transform"]["image"] == stored2


def test_secrets_reach_code_in_its_image(tusk: Any, images: Images) -> None:
    import base64

    name = unique("tusk-test/secret") + ":1"
    images.build(name, {"/etc/app.conf": "x"})
    p = Pipes(tusk)
    p.repo("in", {"/a": "alpha"})
    tusk.write("s.json", json.dumps({"apiVersion": "v1", "kind": "Secret",
                                     "metadata": {"name": "api"},
                                     "data": {"key": base64.b64encode(b"k-123").decode()}}))
    tusk.ok("create", "secret", "-f", "s.json")
    s = spec(name, cmd=["sh", "-c", 'cat /etc/secret/key "/top/key" > /pfs/out/got; echo "$K" >> /pfs/out/got'],
             secrets=[{"name": "api", "mount_path": "/etc/secret"},  # inside the image's /etc
                      {"name": "api", "mount_path": "/top"},
                      {"name": "api", "env_var": "K", "key": "key"}])
    p.create(s)
    p.wait("report@master")
    assert p.ok("get", "file", "report@master:/got") == "k-123k-123k-123\n"


def test_a_service_runs_in_its_image(tusk: Any, images: Images) -> None:
    import time

    name = unique("tusk-test/service") + ":1"
    images.build(name, {"/app/marker": "in-image"})
    p = Pipes(tusk)
    p.repo("site", {"index.html": "v1"})
    p.create({"pipeline": {"name": "web"}, "input": pfs_input("site", "/"),
              "service": {"internal_port": 8080},
              "transform": {"image": name, "cmd": ["sh", "-c",
                            "echo serving $(cat /pfs/site/index.html) with $(cat /app/marker); sleep 1000"]}})
    log = p.root / "logs" / "default" / "web" / "service.log"
    deadline = time.monotonic() + 30
    while not (log.exists() and "serving v1 with in-image" in log.read_text()):
        assert time.monotonic() < deadline, log.read_text() if log.exists() else "no service log"
        time.sleep(0.1)
    p.ok("delete", "pipeline", "web")


def test_err_cmd_and_datum_batching_run_in_the_image(tusk: Any, images: Images) -> None:
    name = unique("tusk-test/errcmd") + ":1"
    images.build(name, {"/app/marker": "m"})
    p = Pipes(tusk)
    p.repo("in", {"/a": "alpha", "/b": "beta", "/c": "gamma"})
    s = spec(name, cmd=["sh", "-c", "exit 3"], err_cmd=["sh", "-c", "test -f /app/marker"])
    s["datum_tries"] = 1
    p.create(s)
    p.wait("report@master")
    job = p.job("report")
    assert (job["state"], job["recovered"]) == ("SUCCESS", 3), job  # recovered inside the image

    # Datum batching: one shell per slot asks for datums with 'tusk next datum', which the
    # image does not have: tusk shows its own (standard-library-only) client at /.tusk/bin.
    batched = {"pipeline": {"name": "batched"}, "input": pfs_input("in"),
               "transform": {"image": name, "datum_batching": True, "cmd": ["sh", "-c",
                             ('while eval "$(tusk next datum)"; do'
                             ' { cat "$in"; echo " $$ $(cat /app/marker)"; } > "/pfs/out/${in##*/}"; done')]}}
    p.create(batched)
    p.wait("batched@master")
    out = p.text_tree("batched@master")
    assert sorted(out) == ["/a", "/b", "/c"]
    assert {v.split()[0] for v in out.values()} == {"alpha", "beta", "gamma"}
    assert {v.split()[2] for v in out.values()} == {"m"}  # inside the image
    assert len({v.split()[1] for v in out.values()}) == 1  # one process for every datum


@pytest.fixture(scope="module")
def private_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from start_registry(tmp_path_factory.mktemp("private"), auth=("puller", "pull-pw-9"))


def test_a_private_registry_takes_credentials_from_image_pull_secrets_or_the_login_file(
        tusk: Any, images: Images, private_registry: str, tmp_path: Path) -> None:
    import base64
    import os

    name = f"{private_registry}/{unique('private')}:1"
    images.build(name, code("1"))
    login = tmp_path / "docker-config"  # the test's own login file, not the machine's
    login.mkdir()
    images.login(private_registry, "puller", "pull-pw-9", login)
    images.push(name, config=login, auth=("puller", "pull-pw-9"))
    images.remove(name)
    p = Pipes(tusk)
    p.repo("in", {"/a": "alpha"})
    p.t.env["DOCKER_CONFIG"] = str(tmp_path / "nobody-logged-in")
    line = tusk.fail("create", "pipeline", "-f", str(p.spec_file(spec(name))))
    assert "refused" in line and "HTTP 401" in line and "image_pull_secrets" in line, line

    # A kubernetes.io/dockerconfigjson secret, as 'kubectl create secret docker-registry' makes.
    auth = base64.b64encode(b"puller:pull-pw-9").decode()
    config = json.dumps({"auths": {private_registry: {"auth": auth}}}).encode()
    tusk.write("regcred.json", json.dumps({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "regcred"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(config).decode()}}))
    tusk.ok("create", "secret", "-f", "regcred.json")
    p.create(spec(name, image_pull_secrets=["regcred"]))
    p.wait("report@master")
    assert report(p)["version"] == "1"
    assert "pull-pw-9" not in json.dumps(p.raw("inspect", "pipeline", "report"))

    # Or the engine's own login file, as 'docker login' writes it (read by the controller too:
    # the one started with the empty login file above goes first).
    p.stop_controllers()
    p.t.env.update({k: v for k, v in login_env(login).items() if k in ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE")})
    assert os.path.exists(login / "config.json")
    other = {**spec(name), "pipeline": {"name": "report2"}}
    p.create(other)
    p.wait("report2@master")


def test_a_spout_runs_in_its_image_and_writes_with_tusk_put_file(tusk: Any, images: Images) -> None:
    import time

    name = unique("tusk-test/spout") + ":1"
    images.build(name, {"/app/marker": "from-the-image", "/app/spout.sh": (
        "#!/bin/sh\n"
        "caps=$(grep CapEff /proc/self/status | tr -d ' \\t')\n"
        "for i in 1 2 3; do echo \"$i $(cat /app/marker) $caps\" | tusk put file spouty@master:/f$i -f -; done\n"
        "ls /root /home /work 2>/dev/null | tusk put file spouty@master:/host -f -\n"
        "sleep 1000\n")})
    p = Pipes(tusk)
    r = tusk("create", "pipeline", "-f", str(p.spec_file(
        {"pipeline": {"name": "spouty"}, "spout": {},
         "transform": {"image": name, "cmd": ["sh", "/app/spout.sh"]}})))
    assert r.returncode == 0, r.stderr
    assert "no effect" not in r.stderr
    deadline = time.monotonic() + 60
    while True:
        tree = p.text_tree("spouty@master") if p.raw("list", "commit", "spouty@master") else {}
        if len(tree) == 4:
            break
        assert time.monotonic() < deadline, tree
        time.sleep(0.3)
    assert {tree[f"/f{i}"].split()[1] for i in (1, 2, 3)} == {"from-the-image"}
    assert tree["/f1"].split()[2] == "CapEff:0000000000000000"  # no capability, whatever its uid
    assert tree["/host"] == ""  # none of the host's homes or working trees in its view
    p.ok("delete", "pipeline", "spouty")


def test_gc_reclaims_unpacked_images_and_the_next_job_unpacks_again(tusk: Any, images: Images) -> None:
    name = unique("tusk-test/gc") + ":1"
    images.build(name, code("1"))
    p = Pipes(tusk)
    p.repo("in", {"/a": "alpha"})
    p.create(spec(name))
    p.wait("report@master")
    assert os.listdir(p.root / "images")
    stats = json.loads(p.ok("gc", "--grace", "0", "--raw"))
    assert stats["images_freed"] == 1 and stats["image_bytes_freed"] > 0
    assert os.listdir(p.root / "images") == []
    p.put("in", {"/b": "beta"})
    p.wait("report@master")
    assert report(p, "/b")["version"] == "1"


def test_push_images_with_a_username_pushes_into_that_namespace(tusk: Any, images: Images,
                                                                registry: str) -> None:
    local = unique("solo") + ":dev"  # no namespace of its own
    image_id = images.build(local, code("1"))
    p = Pipes(tusk)
    p.repo("in", {"/a": "alpha"})
    p.ok("create", "pipeline", "-f", str(p.spec_file(spec(local))), "--push-images",
         "--registry", registry, "--username", "team")
    pushed = f"{registry}/team/{local.split(':')[0]}:tusk-{image_id.split(':')[1][:12]}"
    images.made.append(pushed)
    assert p.raw("inspect", "pipeline", "report")["spec"]["transform"]["image"] == pushed
    p.wait("report@master")
    assert report(p)["version"] == "1"
    line = tusk.fail("update", "pipeline", "-f", str(p.spec_file(spec(local))), "--username", "team")
    assert "--registry and --username go with --push-images" in line


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="needs Debian's python3")
def test_python_code_in_its_image_batches_with_the_sdk(tusk: Any, images: Images,
                                                       tmp_path: Path) -> None:
    """A Python image (made from this machine's interpreter, no download) uses
    ``@tusk.batch_all_datums``, which tusk shows inside it."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    ctx = tmp_path / "ctx"
    subprocess.run([sys.executable, str(root / "scripts" / "python_rootfs.py"), str(ctx / "rootfs"),
                    "--python", "/usr/bin/python3"], check=True, capture_output=True)
    (ctx / "main.py").write_text(
        "import os, tusk\n"
        "PID = os.getpid()  # loaded once, used for every datum\n"
        "@tusk.batch_all_datums\n"
        "def run():\n"
        "    src = os.environ['in']\n"
        "    with open('/pfs/out/' + os.path.basename(src), 'w') as f:\n"
        "        f.write(open(src).read().upper() + ' %d' % PID)\n"
        "run()\n")
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY rootfs/ /\nCOPY main.py /code/main.py\n")
    name = unique("tusk-test/python") + ":1"
    r = subprocess.run([images.cli, "build", "-q", "-t", name, str(ctx)], capture_output=True,
                       text=True, env={**os.environ, "DOCKER_BUILDKIT": "0"}, check=False)
    assert r.returncode == 0, r.stderr
    images.made.append(name)
    p = Pipes(tusk)
    p.repo("in", {"/a": "alpha", "/b": "beta"})
    p.create({"pipeline": {"name": "py"}, "input": pfs_input("in"),
              "transform": {"image": name, "cmd": ["python3", "/code/main.py"],
                            "datum_batching": True}})
    p.wait("py@master")
    out = p.text_tree("py@master")
    assert {k: v.split()[0] for k, v in out.items()} == {"/a": "ALPHA", "/b": "BETA"}
    assert len({v.split()[1] for v in out.values()}) == 1  # one Python process for both
