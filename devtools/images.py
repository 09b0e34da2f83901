"""Build the production images on this machine (`make images`), without an image registry.

No registry is reachable here (nor, often, in a clinic's build room), but Debian's archive is:
1. debootstrap makes a minimal Debian bookworm root file system (cached in var/images/);
2. it is slimmed as Debian's own `debian:bookworm-slim` is (no docs, man pages or apt lists)
   and committed into buildah's local storage under that very name, so deploy/Dockerfile keeps
   its standard FROM line;
3. buildah builds the three targets (rasa, actions, console) with `--isolation chroot` (no
   container runtime is needed; podman/crun cannot run in this sandbox) and `--layers`, lending
   the build this machine's pip cache so a rebuild downloads and compiles nothing.

    python -m devtools.images build            # all three (make images)
    python -m devtools.images build console    # one
    python -m devtools.images sizes            # the images and their sizes

Containers cannot run here, so the images are started as processes in their own root file
systems (`buildah from` + `buildah mount`, then chroot): see tests/deploy/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from common.paths import PROJECT_ROOT

TARGETS = ("rasa", "actions", "console")
BASE_IMAGE = "docker.io/library/debian:bookworm-slim"  # deploy/Dockerfile's FROM line
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
CACHE = PROJECT_ROOT / "var" / "images"  # gitignored (var/)
ROOTFS = CACHE / f"{SUITE}-rootfs"
# The build machine's CA bundle, lent to pip in the build: a TLS-inspecting proxy's CA is in it.
HOST_CA = Path(os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt"))
BUILD_CA = "/etc/ssl/build-host-ca.crt"
PIP_CACHE = Path(os.environ.get("PIP_CACHE_DIR", Path.home() / ".cache" / "pip"))
DOCKERFILE = PROJECT_ROOT / "deploy" / "Dockerfile"
TOOLS = {"buildah": "buildah", "debootstrap": "debootstrap"}  # program -> Debian package

# What Debian's slim images leave out (docker-debian-artifacts' slimify), kept out of later
# installs too by dpkg's path-exclude.
SLIM_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/info/*",
    "/usr/share/man/*",
    "/usr/share/locale/*",
    "/usr/share/lintian/*",
    "/usr/share/linda/*",
)
SLIM_INCLUDES = ("/usr/share/doc/*/copyright",)  # the licences stay
# The official image's sources: security updates and point-release updates, not only the release.
DEBIAN_SOURCES = f"""Types: deb
URIs: {MIRROR}
Suites: {SUITE} {SUITE}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: {SUITE}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def image_name(target: str, tag: str = "local") -> str:
    """The local name of a target's image, as deploy/compose.yml names it (IMAGE_TAG=local)."""
    return f"localhost/scar-faq-{target}:{tag}"


def run(command: list[str], **options: object) -> subprocess.CompletedProcess:
    """Run a command, failing loudly; its output goes to the terminal unless captured."""
    return subprocess.run(command, check=True, **options)  # type: ignore[call-overload]


def output(command: list[str]) -> str:
    """A command's standard output, stripped."""
    return run(command, capture_output=True, text=True).stdout.strip()


def ensure_tools() -> None:
    """Install buildah and debootstrap from Debian when missing (as root, or with sudo)."""
    missing = [package for program, package in TOOLS.items() if shutil.which(program) is None]
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    run([*sudo, "apt-get", "update", "-qq"])
    run(
        [*sudo, "apt-get", "install", "-y", "-qq", *missing],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


def make_rootfs(target: Path = ROOTFS) -> Path:
    """A minimal Debian root file system from debootstrap, made once and kept in var/images/."""
    done = target / ".debootstrap-complete"
    if done.exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    run(["debootstrap", "--variant=minbase", SUITE, str(target), MIRROR], stdout=subprocess.DEVNULL)
    slim(target)
    done.touch()
    return target


def slim(root: Path) -> None:
    """Make a debootstrap tree like Debian's slim image: fewer files, the full set of sources."""
    dpkg_cfg = root / "etc" / "dpkg" / "dpkg.cfg.d" / "docker"
    dpkg_cfg.write_text(
        "".join(f"path-exclude {p}\n" for p in SLIM_EXCLUDES)
        + "".join(f"path-include {p}\n" for p in SLIM_INCLUDES)
    )
    for pattern in ("usr/share/info/*", "usr/share/man/*", "usr/share/locale/*", "usr/share/lintian/*"):
        for path in root.glob(pattern):
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    for doc in (root / "usr" / "share" / "doc").glob("*"):
        for path in doc.iterdir() if doc.is_dir() and not doc.is_symlink() else ():
            if path.name != "copyright":
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    for cache in ("var/cache/apt", "var/lib/apt/lists"):
        for path in (root / cache).glob("**/*"):
            if path.is_file() and path.name != "lock":
                path.unlink()
    (root / "etc" / "apt" / "sources.list").unlink(missing_ok=True)
    (root / "etc" / "apt" / "sources.list.d" / "debian.sources").write_text(DEBIAN_SOURCES)
    # Like the official image: apt keeps no downloaded packages in the image.
    (root / "etc" / "apt" / "apt.conf.d" / "docker-clean").write_text(
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb'
        ' /var/cache/apt/*.bin || true"; };\nAPT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb'
        ' /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";\n'
    )
    (root / "etc" / "hostname").unlink(missing_ok=True)


def image_exists(name: str) -> bool:
    """Whether buildah's local storage has an image of this name."""
    return (
        subprocess.run(["buildah", "inspect", "--type", "image", name], capture_output=True).returncode == 0
    )


def import_base(root: Path, name: str = BASE_IMAGE) -> None:
    """Commit the root file system into buildah's storage as `name` (no registry involved)."""
    container = output(["buildah", "from", "scratch"])
    try:
        mount = Path(output(["buildah", "mount", container]))
        run(["cp", "-a", f"{root}/.", str(mount)])
        (mount / ".debootstrap-complete").unlink(missing_ok=True)
        run(["buildah", "umount", container])
        run(
            [
                "buildah",
                "config",
                "--env",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--cmd",
                "bash",
                "--os",
                "linux",
                "--arch",
                "amd64",
                container,
            ]
        )
        run(
            ["buildah", "commit", "--quiet", "--format", "docker", container, name], stdout=subprocess.DEVNULL
        )
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True)


def build(target: str, tag: str = "local") -> float:
    """Build one target of deploy/Dockerfile with buildah; the seconds it took."""
    PIP_CACHE.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    run(
        [
            "buildah",
            "bud",
            "--isolation",
            "chroot",
            "--layers",
            "--format",
            "docker",  # keeps HEALTHCHECK (OCI images have no such field)
            "--volume",
            f"{PIP_CACHE}:/root/.cache/pip",
            *(
                ["--volume", f"{HOST_CA}:{BUILD_CA}:ro", "--build-arg", f"PIP_CERT={BUILD_CA}"]
                if HOST_CA.is_file()
                else []
            ),
            "-f",
            str(DOCKERFILE),
            "--target",
            target,
            "-t",
            image_name(target, tag),
            str(PROJECT_ROOT),
        ]
    )
    return time.monotonic() - started


def size(name: str) -> str:
    """An image's size as `buildah images` gives it (its layers, uncompressed: "3.44 GB")."""
    for image in json.loads(output(["buildah", "images", "--json", name])):
        return str(image.get("size", "?"))
    return "?"


def build_all(targets: list[str], tag: str = "local") -> dict[str, float]:
    """Tools, base image, then each target; the seconds each step took."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    ensure_tools()
    root = make_rootfs()
    if not image_exists(BASE_IMAGE):
        import_base(root)
    timings["base"] = time.monotonic() - started
    for target in targets:
        timings[target] = build(target, tag)
    return timings


@dataclass
class Container:
    """A container made from an image whose processes run here as plain processes in its root file system.

    `buildah from` makes the container (the image's layers plus a writable one) and `buildah
    mount` gives its root; each process is started in a private mount namespace (unshare) with
    /proc, /dev and /sys and the volumes bind-mounted in, then chroot as the image's user, in its
    working directory, with its environment plus the service's. The host's network is shared, so
    every server listens on loopback on a port of its own.
    """

    image: str
    name: str
    root: Path
    config: dict

    @classmethod
    def create(cls, image: str, name: str) -> Container:
        """A new container of `image` (any old one of that name is removed first)."""
        subprocess.run(["buildah", "rm", name], capture_output=True)
        run(["buildah", "from", "--quiet", "--name", name, image], stdout=subprocess.DEVNULL)
        root = Path(output(["buildah", "mount", name]))
        inspected = json.loads(output(["buildah", "inspect", "--type", "image", image]))
        config = inspected.get("Docker", {}).get("config") or inspected["OCIv1"]["config"]
        return cls(image, name, root, config)

    def environment(self, service_env: dict[str, str]) -> dict[str, str]:
        """The image's environment (ENV lines), then the service's over it, as a container engine does."""
        env = dict(item.split("=", 1) for item in self.config.get("Env") or [])
        home = "/root" if self.user().startswith("0") else "/home/clinic"
        return {"HOME": home, "HOSTNAME": self.name, **env, **service_env}

    def user(self) -> str:
        """The image's USER (uid:gid), root when it names none."""
        return self.config.get("User") or "0:0"

    def command(self, volumes: dict[Path, str], argv: list[str], user: str | None = None) -> list[str]:
        """The host command that runs argv in the container: mounts in a private namespace, then chroot."""
        mounts = [
            'mount --rbind /dev "$R/dev"',
            'mount -t proc proc "$R/proc"',
            'mount --rbind /sys "$R/sys"',
        ]
        for source, spec in volumes.items():
            target, _, mode = spec.partition(":")
            kind = "-d" if source.is_dir() else "-f"
            make = (
                f'mkdir -p "$R{target}"'
                if source.is_dir()
                else f'mkdir -p "$R{Path(target).parent}" && touch "$R{target}"'
            )
            mounts.append(f'[ {kind} "$R{target}" ] || {make}')
            mounts.append(f'mount --bind "{source}" "$R{target}"')
            if mode == "ro":
                mounts.append(f'mount -o remount,bind,ro "$R{target}"')
        workdir = self.config.get("WorkingDir") or "/"
        script = (
            " && ".join(mounts) + f' && exec chroot --userspec="$U" "$R" /usr/bin/env -C "{workdir}" "$@"'
        )
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            f'R="{self.root}"; U="{user or self.user()}"; {script}',
            "container",
            *argv,
        ]

    def start(
        self,
        service_env: dict[str, str],
        volumes: dict[Path, str],
        argv: list[str] | None = None,
        log: IO[str] | None = None,
    ) -> subprocess.Popen:
        """Start the image's CMD (or argv) as a process group of its own; the process."""
        return subprocess.Popen(
            self.command(volumes, argv or list(self.config.get("Cmd") or [])),
            env=self.environment(service_env),
            stdout=log,
            stderr=subprocess.STDOUT if log else None,
            start_new_session=True,
        )

    def exec(
        self, service_env: dict[str, str], volumes: dict[Path, str], argv: list[str], stdin: str = ""
    ) -> subprocess.CompletedProcess:
        """Run one command in the container to its end (`docker compose exec`); its result."""
        return subprocess.run(
            self.command(volumes, argv),
            env=self.environment(service_env),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def remove(self) -> None:
        """Unmount and delete the container (its writable layer goes; volumes stay)."""
        subprocess.run(["buildah", "umount", self.name], capture_output=True)
        subprocess.run(["buildah", "rm", self.name], capture_output=True)


def main(argv: list[str] | None = None) -> None:
    """`make images`: build the images; `sizes`: list them."""
    parser = argparse.ArgumentParser(prog="python -m devtools.images", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_command = commands.add_parser("build", help="build the images (all three unless named)")
    build_command.add_argument("targets", nargs="*", metavar="TARGET", help=f"one of {', '.join(TARGETS)}")
    build_command.add_argument("--tag", default="local")
    commands.add_parser("sizes", help="the images' sizes")
    arguments = parser.parse_args(argv)
    if arguments.command == "build":
        unknown = set(arguments.targets) - set(TARGETS)
        if unknown:
            parser.error(f"no such image: {', '.join(sorted(unknown))} (choose from {', '.join(TARGETS)})")
        timings = build_all(arguments.targets or list(TARGETS), arguments.tag)
        for step, seconds in timings.items():
            print(f"{step:8} {seconds:7.0f} s", flush=True)
    for target in TARGETS:
        name = image_name(target)
        if image_exists(name):
            print(f"{name:40} {size(name)}")
        else:
            print(f"{name:40}  not built (make images)")


if __name__ == "__main__":
    main()
