"""Container images: where a pipeline's ``transform.image`` comes from and the file system it gives.

``reference`` parses image names as Docker does; ``registry`` speaks the registry HTTP API
(v2 / OCI distribution) and ``engines`` asks the local Docker Engine or Podman; ``layers``
unpacks image layers into a root file system; ``store`` ties them together: it resolves a
reference to a digest and keeps each image's unpacked root under the tusk root, where the
``image`` runtime (``tusk.workers.runtimes.image``) runs user code in it.
"""
