#!/usr/bin/env bash
# Make the container engines and the image tools answer, for the image tests: install Debian's
# docker.io (Docker Engine) and podman, docker-registry (a registry the tests run on 127.0.0.1)
# and busybox-static (test images are built FROM scratch with it: no download), then start
# dockerd if it does not answer yet. The image tests run once on each engine that answers.
# Root with apt only; elsewhere it does nothing and the image tests skip (or fail, with
# TUSK_REQUIRE_ENGINE=1).
set -uo pipefail
answers() { command -v "$1" >/dev/null 2>&1 && "$1" version --format '{{.Server.Version}}' >/dev/null 2>&1; }
[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || exit 0
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v podman >/dev/null 2>&1 || missing+=(podman runc)  # the tests run on both engines
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
file -b /usr/bin/busybox 2>/dev/null | grep -q "statically linked" || missing+=(busybox-static)
command -v file >/dev/null 2>&1 || missing+=(file)
if [ ${#missing[@]} -gt 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null 2>&1 \
    || echo "engine: could not install ${missing[*]}; image tests will be skipped" >&2
fi
# Podman on this kind of host (cgroups v1 hybrid, a hard nofile limit): runc instead of crun,
# cgroupfs, and ulimits it may set. Only where no configuration exists yet.
if command -v podman >/dev/null 2>&1 && [ ! -e /etc/containers/containers.conf ]; then
  mkdir -p /etc/containers
  cat > /etc/containers/containers.conf <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
fi
if ! answers docker && command -v dockerd >/dev/null 2>&1; then
  nohup dockerd --host=unix:///var/run/docker.sock >/tmp/tusk-dockerd.log 2>&1 &
  for _ in $(seq 100); do answers docker && break; sleep 0.2; done
  answers docker || echo "engine: dockerd did not start; see /tmp/tusk-dockerd.log" >&2
fi
exit 0
