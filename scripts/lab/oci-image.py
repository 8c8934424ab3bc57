#!/usr/bin/python3
"""Write a one-layer busybox image as an OCI image layout tar archive.

    oci-image.py --name REF --output FILE [--busybox PATH] [--entrypoint JSON]
                 [--arch ARCH] [--add SRC:DEST]... [--] [CMD ARG...]

The image holds a static busybox binary as /bin/busybox with a symlink for
every applet it reports (`busybox --list-full`), /etc/passwd and /etc/group
(root and nobody), and the directories /tmp, /root, /var/www (for httpd
demos), /proc, /sys and /dev; each --add copies the file SRC into the image
as the executable DEST (in /bin or /usr/bin, not an applet's name, e.g.
/bin/udp-echo: a static program of the lab's). Its config sets PATH, the
working directory "/", the optional ENTRYPOINT (a JSON list) and CMD (the trailing arguments).

The archive is what `ctr images import` reads: oci-layout, index.json and
blobs/sha256/*. The manifest's entry in index.json carries the annotation
io.containerd.image.name=REF, which is the name the image is imported
under. Everything is written in a fixed order with fixed times and owners,
so the same busybox binary and arguments always give the same digests.
The manifest digest is printed on stdout.

Only the Python standard library is used.
"""

import argparse
import hashlib
import io
import json
import platform
import subprocess
import sys
import tarfile

# Every timestamp in the image: 2024-01-01T00:00:00Z. Fixed for stable digests.
EPOCH = 1704067200
EPOCH_TEXT = "2024-01-01T00:00:00Z"

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = (
    "root:x:0:\n"
    "nobody:x:65534:\n"
)

# Directories beyond those the applet paths imply, with their modes.
EXTRA_DIRS = {
    "dev": 0o755,
    "etc": 0o755,
    "proc": 0o555,
    "root": 0o700,
    "sys": 0o555,
    "tmp": 0o1777,
    "var": 0o755,
    "var/tmp": 0o1777,
    "var/www": 0o755,
}

GOARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}

MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"


def canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_info(name, kind, mode, size=0, target=""):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.size = size
    ti.linkname = target
    ti.mtime = EPOCH
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


def build_layer(busybox_path, added):
    with open(busybox_path, "rb") as f:
        busybox = f.read()
    listing = subprocess.run(
        [busybox_path, "--list-full"], check=True, capture_output=True, text=True
    ).stdout.split()
    # "linuxrc" (an init for initramfs use) has no directory and no use here.
    applets = sorted(p for p in listing if "/" in p and p != "bin/busybox")

    dirs = dict(EXTRA_DIRS)
    dirs["bin"] = 0o755
    for path in applets:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.setdefault("/".join(parts[:i]), 0o755)

    files = {
        "bin/busybox": (busybox, 0o755),
        "etc/passwd": (PASSWD.encode(), 0o644),
        "etc/group": (GROUP.encode(), 0o644),
    }
    for src, dest in added:
        if dest in applets or dest in files:
            sys.exit(f"oci-image.py: --add {src}:/{dest}: /{dest} is already in the image")
        with open(src, "rb") as f:
            files[dest] = (f.read(), 0o755)

    entries = []
    for d, mode in dirs.items():
        entries.append((d, tar_info(d + "/", tarfile.DIRTYPE, mode), None))
    for path, (data, mode) in files.items():
        entries.append((path, tar_info(path, tarfile.REGTYPE, mode, len(data)), data))
    for path in applets:
        entries.append((path, tar_info(path, tarfile.SYMTYPE, 0o777, target="/bin/busybox"), None))
    # Sorting by path puts every directory before what it contains.
    entries.sort(key=lambda e: e[0])

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for _, ti, data in entries:
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True, help="image reference, e.g. switchyard.local/busybox:1")
    ap.add_argument("--output", required=True, help="archive to write")
    ap.add_argument("--busybox", default="/bin/busybox", help="static busybox binary")
    ap.add_argument("--entrypoint", help='JSON list, e.g. \'["/bin/sh","-c"]\'')
    ap.add_argument("--arch", help="GOARCH of the image (default: this machine's)")
    ap.add_argument("--add", action="append", default=[], metavar="SRC:DEST",
                    help="add the file SRC as the executable DEST (e.g. /bin/udp-echo)")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="CMD of the image")
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd

    arch = args.arch or GOARCH.get(platform.machine())
    if not arch:
        sys.exit(f"oci-image.py: unknown machine {platform.machine()!r}; pass --arch")

    added = []
    for spec in args.add:
        src, sep, dest = spec.rpartition(":")
        dest = dest.lstrip("/")
        parent = dest.rsplit("/", 1)[0] if "/" in dest else ""
        if not sep or not src or parent not in ("bin", "usr/bin") or dest.endswith("/"):
            sys.exit(f"oci-image.py: --add {spec!r}: want SRC:DEST with DEST in /bin or /usr/bin")
        added.append((src, dest))

    layer = build_layer(args.busybox, added)
    layer_digest = digest(layer)

    container_config = {"Env": [PATH_ENV], "WorkingDir": "/"}
    if cmd:
        container_config["Cmd"] = cmd
    if args.entrypoint:
        ep = json.loads(args.entrypoint)
        if not (isinstance(ep, list) and all(isinstance(x, str) for x in ep)):
            sys.exit("oci-image.py: --entrypoint must be a JSON list of strings")
        container_config["Entrypoint"] = ep

    config = canonical_json({
        "architecture": arch,
        "os": "linux",
        "created": EPOCH_TEXT,
        "config": container_config,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created": EPOCH_TEXT, "created_by": "scripts/lab/oci-image.py (busybox)"}],
    })
    manifest = canonical_json({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": MT_LAYER, "digest": layer_digest, "size": len(layer)}],
    })
    tag = args.name.rsplit(":", 1)[1] if ":" in args.name.rsplit("/", 1)[-1] else "latest"
    index = canonical_json({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [{
            "mediaType": MT_MANIFEST,
            "digest": digest(manifest),
            "size": len(manifest),
            "platform": {"architecture": arch, "os": "linux"},
            "annotations": {
                "io.containerd.image.name": args.name,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    })

    members = [("oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"})),
               ("index.json", index)]
    blobs = {}
    for blob in (layer, config, manifest):
        blobs[digest(blob).split(":", 1)[1]] = blob

    with open(args.output, "wb") as out, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(tar_info("blobs/", tarfile.DIRTYPE, 0o755))
        tar.addfile(tar_info("blobs/sha256/", tarfile.DIRTYPE, 0o755))
        for hexd in sorted(blobs):
            data = blobs[hexd]
            tar.addfile(tar_info(f"blobs/sha256/{hexd}", tarfile.REGTYPE, 0o644, len(data)),
                        io.BytesIO(data))
        for name, data in members:
            tar.addfile(tar_info(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))

    print(digest(manifest))


if __name__ == "__main__":
    main()
