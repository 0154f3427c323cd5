#!/usr/bin/env python3
"""Writes the benchmark's package folders and raw publish bodies.

  gen_packages.py folders OUT SMALL VERSIONS BIG_VERSIONS
      OUT/small/<name>/<version>/  for SMALL packages bench-small-NNN x VERSIONS versions
      OUT/big/<version>/           for bench-big x BIG_VERSIONS versions
      OUT/project/package.json     a project depending on every small package
  gen_packages.py pubdir OUT NAME COUNT
      OUT/<i>/ package folders of NAME at 1.0.<i> for npm publish timing
  gen_packages.py bodies OUT NAME COUNT REGISTRY_URL
      OUT/<i>.json  npm publish bodies (PUT /NAME) for NAME@2.0.<i>
"""
import base64
import hashlib
import io
import json
import os
import sys
import tarfile

README = "# {name}\n\nA package generated for the Tessera vs Verdaccio benchmark.\n"
INDEX = "module.exports = function () { return %s; };\n"


def manifest(name, version):
    return {
        "name": name,
        "version": version,
        "description": f"benchmark package {name}",
        "main": "index.js",
        "license": "MIT",
        "keywords": ["bench", "tessera"],
        "repository": {"type": "git", "url": "https://example.com/bench.git"},
    }


def write_folder(path, name, version):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "package.json"), "w") as f:
        json.dump(manifest(name, version), f, indent=2)
    with open(os.path.join(path, "index.js"), "w") as f:
        f.write(INDEX % json.dumps(f"{name}@{version}"))
    with open(os.path.join(path, "README.md"), "w") as f:
        f.write(README.format(name=name))


def folders(out, small, versions, big_versions):
    names = [f"bench-small-{i:03d}" for i in range(small)]
    for name in names:
        for v in range(versions):
            write_folder(os.path.join(out, "small", name, f"1.0.{v}"), name, f"1.0.{v}")
    for v in range(big_versions):
        write_folder(os.path.join(out, "big", f"1.{v}.0"), "bench-big", f"1.{v}.0")
    os.makedirs(os.path.join(out, "project"), exist_ok=True)
    with open(os.path.join(out, "project", "package.json"), "w") as f:
        json.dump({"name": "bench-project", "version": "1.0.0", "private": True,
                   "dependencies": {n: "^1.0.0" for n in names}}, f, indent=2)


def pubdir(out, name, count):
    for i in range(count):
        write_folder(os.path.join(out, str(i)), name, f"1.0.{i}")


def tarball(name, version):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for fname, text in (("package.json", json.dumps(manifest(name, version), indent=2)),
                            ("index.js", INDEX % json.dumps(f"{name}@{version}"))):
            data = text.encode()
            info = tarfile.TarInfo(f"package/{fname}")
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 499162500
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def bodies(out, name, count, registry):
    os.makedirs(out, exist_ok=True)
    registry = registry.rstrip("/")
    for i in range(count):
        version = f"2.0.{i}"
        tgz = tarball(name, version)
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()
        shasum = hashlib.sha1(tgz).hexdigest()
        m = manifest(name, version)
        m.update({
            "_id": f"{name}@{version}",
            "readme": README.format(name=name),
            "dist": {"integrity": integrity, "shasum": shasum,
                     "tarball": f"{registry}/{name}/-/{name}-{version}.tgz"},
        })
        body = {
            "_id": name,
            "name": name,
            "description": m["description"],
            "dist-tags": {"latest": version},
            "versions": {version: m},
            "access": None,
            "_attachments": {f"{name}-{version}.tgz": {
                "content_type": "application/octet-stream",
                "data": base64.b64encode(tgz).decode(),
                "length": len(tgz)}},
        }
        with open(os.path.join(out, f"{i}.json"), "w") as f:
            json.dump(body, f)


def main(argv):
    cmd = argv[1]
    if cmd == "folders":
        folders(argv[2], int(argv[3]), int(argv[4]), int(argv[5]))
    elif cmd == "pubdir":
        pubdir(argv[2], argv[3], int(argv[4]))
    elif cmd == "bodies":
        bodies(argv[2], argv[3], int(argv[4]), argv[5])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
