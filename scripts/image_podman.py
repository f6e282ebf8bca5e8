"""Podman and the checks' tally for ``scripts/image_check.py`` (stdlib only)."""

from __future__ import annotations

import resource
import subprocess

NAME = "prsm-image-check"  # every container's name starts so: NAME-gw, NAME-sim, ...


class Checks:
    """Each check's outcome, printed as it comes; the failures kept for the exit status."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def __call__(self, ok: bool, what: str, detail: object = "") -> bool:
        print(f"{'ok  ' if ok else 'FAIL'} {what}" + (f": {detail}" if detail else ""), flush=True)
        if not ok:
            self.failed.append(what)
        return ok


class Podman:
    """``podman`` with the OCI runtime asked for, and limits any host grants: podman's default
    open-files and process limits need CAP_SYS_RESOURCE, so the containers get this process's
    open-files limit and 4096 processes."""

    def __init__(self, runtime: str | None) -> None:
        self.base = ["podman"] + (["--runtime", runtime] if runtime else [])
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.limits = ["--ulimit", f"nofile={soft}:{hard}", "--ulimit", "nproc=4096:4096"]
        self.started: list[str] = []

    def proc(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [*self.base, *args]
        return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)

    def __call__(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        done = self.proc(*args, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args[:2])} failed: {done.stderr.strip()}")
        return done.stdout

    def run(self, image: str, *args: str, entrypoint: str | None = None) -> str:
        """A one-off command in ``image`` (removed when it ends); its output."""
        ep = ["--entrypoint", entrypoint] if entrypoint else []
        return self("run", "--rm", "--network", "host", *self.limits, *ep, image, *args)

    def start(self, which: str, options: list[str], image: str, *command: str) -> str:
        """Container ``NAME-which`` on the host's network, detached (removed by :meth:`clean`)."""
        name = f"{NAME}-{which}"
        self.started.append(name)
        self("run", "-d", "--name", name, "--network", "host", *self.limits, *options, image,
             *command)  # fmt: skip
        return name

    def logs(self, name: str) -> str:
        """A container's last output (the gateway logs to stderr)."""
        done = self.proc("logs", name, timeout=30)
        return (done.stdout + done.stderr)[-3000:]

    def clean(self) -> None:
        for name in reversed(self.started):
            self.proc("rm", "-f", name)
        self.started.clear()
