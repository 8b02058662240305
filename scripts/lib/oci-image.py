#!/usr/bin/env python3
"""Write a one-layer OCI image archive around a static binary, without Docker or a registry.

The archive is an OCI image layout (oci-layout, index.json, blobs/sha256/...) that also carries
the `manifest.json` of `docker save`, as Docker 25 and later write it, so that every loader
reads it: `ctr images import`, `kind load image-archive`, `skopeo copy oci-archive:...` and
`docker load`. The index entry names the image by the `io.containerd.image.name` annotation
(what `ctr images import` tags it as) and `org.opencontainers.image.ref.name` (its tag).

Reproducible: for the same binary, arguments and Python/zlib, the bytes are the same: fixed
timestamps (`--created`, seconds since the epoch), owners and entry order, gzip without a name
or time, JSON with sorted keys.

Used by scripts/build-image.sh.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shlex
import sys
import tarfile
import time


def canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_info(name, kind, mode, mtime, size=0):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def build_tar(entries, mtime):
    """entries: (name, bytes or None for a folder, mode), written in the order given."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode in entries:
            if data is None:
                tar.addfile(tar_info(name, tarfile.DIRTYPE, mode, mtime))
            else:
                tar.addfile(tar_info(name, tarfile.REGTYPE, mode, mtime, len(data)), io.BytesIO(data))
    return out.getvalue()


def dockerfile_labels(path):
    """KEY=VALUE items of every LABEL instruction of a Dockerfile (continuation lines joined)."""
    with open(path, encoding="utf-8") as f:
        text = re.sub(r"\\\n", " ", f.read())
    items = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0].upper() == "LABEL":
            items.extend(words[1:])
    return items


def split_reference(reference):
    """('ghcr.io/x/y', 'tag') of 'ghcr.io/x/y:tag'; the tag is 'latest' when none is given."""
    last = reference.rsplit("/", 1)[-1]
    if ":" in last:
        return reference.rsplit(":", 1)
    return reference, "latest"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", required=True, help="the static executable to put in the image")
    parser.add_argument("--path", required=True, help="its path in the image, e.g. /nodeguard")
    parser.add_argument("--reference", required=True, help="image name, e.g. ghcr.io/nodeguard/nodeguard:0.1.0")
    parser.add_argument("--arch", default="amd64", help="OCI architecture (default amd64)")
    parser.add_argument("--created", type=int, required=True, help="image time, seconds since the epoch")
    parser.add_argument("--user", default="0:0", help="the image's User (default 0:0)")
    parser.add_argument("--label", action="append", default=[], help="KEY=VALUE, repeatable")
    parser.add_argument("--labels-from", metavar="DOCKERFILE",
                        help="also take the labels of this Dockerfile's LABEL instructions")
    parser.add_argument("--out", required=True, help="the archive to write")
    args = parser.parse_args()

    with open(args.binary, "rb") as f:
        binary = f.read()
    inner = args.path.lstrip("/")
    if not inner or "/" in inner:
        sys.exit("oci-image: --path must name a file at the image's root, e.g. /nodeguard")
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(args.created))
    labels = {}
    items = dockerfile_labels(args.labels_from) if args.labels_from else []
    for item in items + args.label:
        key, sep, value = item.partition("=")
        if not sep or not key:
            sys.exit(f"oci-image: --label {item!r} is not KEY=VALUE")
        labels[key] = value

    layer_tar = build_tar([(inner, binary, 0o755)], args.created)
    layer = gzip.compress(layer_tar, compresslevel=9, mtime=0)
    config = canonical_json({
        "architecture": args.arch,
        "os": "linux",
        "created": created,
        "config": {
            "User": args.user,
            "Entrypoint": [args.path],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer_tar)]},
        "history": [{"created": created, "created_by": "scripts/build-image.sh"}],
    })
    manifest = canonical_json({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(config),
            "size": len(config),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": sha256(layer),
            "size": len(layer),
        }],
    })
    _, tag = split_reference(args.reference)
    index = canonical_json({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(manifest),
            "size": len(manifest),
            "platform": {"architecture": args.arch, "os": "linux"},
            "annotations": {
                "io.containerd.image.name": args.reference,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    })
    blob = lambda data: "blobs/sha256/" + hashlib.sha256(data).hexdigest()  # noqa: E731
    docker_manifest = canonical_json([{
        "Config": blob(config),
        "RepoTags": [args.reference],
        "Layers": [blob(layer)],
    }])
    archive = build_tar([
        ("blobs", None, 0o755),
        ("blobs/sha256", None, 0o755),
        (blob(config), config, 0o644),
        (blob(layer), layer, 0o644),
        (blob(manifest), manifest, 0o644),
        ("index.json", index, 0o644),
        ("manifest.json", docker_manifest, 0o644),
        ("oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"}), 0o644),
    ], args.created)
    tmp = args.out + ".partial"
    with open(tmp, "wb") as f:
        f.write(archive)
    os.replace(tmp, args.out)
    # What a registry and `crictl images` call the image: its manifest's digest, and its ID.
    print(f"manifest {sha256(manifest)}")
    print(f"config {sha256(config)}")


if __name__ == "__main__":
    main()
