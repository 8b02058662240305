#!/usr/bin/env python3
"""Build the end-to-end suite's OCI image archives without a registry.

Every image shares one uncompressed layer: a static busybox in /bin with a
symlink per applet, plus a minimal /etc/passwd and /etc/group. Each archive is
an OCI image layout (oci-layout, index.json, blobs/sha256/...) whose index
entry carries the `io.containerd.image.name` annotation, which is the name
`ctr images import` gives the image.

The output is byte-for-byte reproducible for a given busybox binary: fixed
timestamps, owners and entry order, and JSON with sorted keys.
"""

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# (references, archive file name, Cmd). The names of one entry share one content (one image
# ID); entries differ by content (a label naming the entry's first reference).
IMAGES = [
    (["registry.local/busybox:1"], "registry.local_busybox_1.tar", ["sh"]),
    (["registry.local/busybox:latest"], "registry.local_busybox_latest.tar", ["sh"]),
    (["evil.example/busybox:1"], "evil.example_busybox_1.tar", ["sh"]),
    # A mirror: one content under an allowed registry's name and its upstream's, which sorts
    # first (containerd 1.7 names a container's image by that first name).
    (["registry.local/mirrored:1", "docker.io/library/mirrored:1"],
     "registry.local_mirrored_1.tar", ["sh"]),
    # The sandbox ("pause") image: containerd kills it with SIGKILL on stop.
    (["registry.local/pause:1"], "registry.local_pause_1.tar", ["/bin/sleep", "infinity"]),
]

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\nnogroup:x:65534:\n"


def tar_info(name, kind, mode, size=0, linkname=""):
    """A tar header with fixed owner and time, so the output is reproducible."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = linkname
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def build_tar(entries):
    """entries: list of (TarInfo, bytes or None), written in name order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in sorted(entries, key=lambda e: e[0].name):
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def applets(busybox):
    """The applet names the given busybox binary provides."""
    out = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout
    names = sorted({line.strip() for line in out.splitlines() if line.strip()})
    for required in ("sh", "sleep", "true", "cat"):
        if required not in names:
            sys.exit(f"build-images: {busybox} lacks the '{required}' applet")
    return [n for n in names if n != "busybox" and "/" not in n]


def build_layer(busybox):
    with open(busybox, "rb") as f:
        binary = f.read()
    entries = []
    for d, mode in (("bin", 0o755), ("dev", 0o755), ("etc", 0o755), ("proc", 0o555),
                    ("root", 0o700), ("sys", 0o555), ("tmp", 0o1777), ("var", 0o755)):
        entries.append((tar_info(d, tarfile.DIRTYPE, mode), None))
    entries.append((tar_info("bin/busybox", tarfile.REGTYPE, 0o755, len(binary)), binary))
    for name in applets(busybox):
        entries.append((tar_info("bin/" + name, tarfile.SYMTYPE, 0o777, linkname="busybox"), None))
    for name, text in (("etc/passwd", PASSWD), ("etc/group", GROUP)):
        data = text.encode()
        entries.append((tar_info(name, tarfile.REGTYPE, 0o644, len(data)), data))
    return build_tar(entries)


def canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build_archive(references, layer, arch, cmd):
    """The OCI layout archive of one content, named by every reference of `references`."""
    reference = references[0]
    config = canonical_json({
        "architecture": arch,
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        # A label naming the entry gives every entry its own content (image id); the names of
        # one entry share it.
        "config": {"Env": [PATH_ENV], "Cmd": cmd, "WorkingDir": "/",
                   "Labels": {"io.nodeguard.testbed.name": reference}},
        "rootfs": {"type": "layers", "diff_ids": [digest(layer)]},
        "history": [{"created": "1970-01-01T00:00:00Z",
                     "created_by": "scripts/testbed/build-images.py"}],
    })
    manifest = canonical_json({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest(layer), "size": len(layer)}],
    })
    index = canonical_json({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(manifest),
            "size": len(manifest),
            "platform": {"architecture": arch, "os": "linux"},
            "annotations": {"io.containerd.image.name": name},
        } for name in references],
    })
    layout = canonical_json({"imageLayoutVersion": "1.0.0"})
    entries = [
        (tar_info("blobs", tarfile.DIRTYPE, 0o755), None),
        (tar_info("blobs/sha256", tarfile.DIRTYPE, 0o755), None),
        (tar_info("oci-layout", tarfile.REGTYPE, 0o644, len(layout)), layout),
        (tar_info("index.json", tarfile.REGTYPE, 0o644, len(index)), index),
    ]
    for blob in (layer, config, manifest):
        name = "blobs/sha256/" + hashlib.sha256(blob).hexdigest()
        entries.append((tar_info(name, tarfile.REGTYPE, 0o644, len(blob)), blob))
    return build_tar(entries)


def write_if_changed(path, data):
    """Replace path atomically, and only when its content differs."""
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return False
    except FileNotFoundError:
        pass
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busybox", required=True, help="path of a static busybox binary")
    parser.add_argument("--arch", required=True, help="OCI architecture, e.g. amd64")
    parser.add_argument("--out", required=True, help="folder to write the archives to")
    args = parser.parse_args()

    os.makedirs(args.out, exist_ok=True)
    layer = build_layer(args.busybox)
    for references, file_name, cmd in IMAGES:
        path = os.path.join(args.out, file_name)
        changed = write_if_changed(path, build_archive(references, layer, args.arch, cmd))
        print(f"{'wrote' if changed else 'unchanged'} {path} ({', '.join(references)})")


if __name__ == "__main__":
    main()
