"""The command line of manifest.lock (`repro.provenance.pins`; docs/containers.md).

    python -m repro.provenance.pins check              # schema + lock-file digests
    python -m repro.provenance.pins build-args train   # --build-arg lines for docker build
    python -m repro.provenance.pins compose-env        # .env lines for docker compose
    python -m repro.provenance.pins sync-locks         # after requirements/compile.sh
    python -m repro.provenance.pins set-digest eval sha256:<64 hex> --source "..."

The Dockerfiles' and docker-compose.yml's default build args mirror the images' pins, so a plain
`docker build` or `docker compose build` takes the pinned bases; `set-digest` and `sync-locks`
rewrite those defaults with the lock, and `check` reports any that differ.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from repro.errors import InputError
from repro.io import sha256_file
from repro.provenance import pins
from repro.provenance.pins.image_builds import build_args, compose_env, stale_build_files, sync_build_files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.provenance.pins", description=pins.__doc__.split("\n")[0])
    parser.add_argument("--lock", help="manifest.lock to use (default: $REPRO_LOCK or the repository's)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check", help="validate the schema and the requirements lock digests")
    bargs = sub.add_parser("build-args", help="print docker build arguments")
    bargs.add_argument("image")
    bargs.add_argument("--offline-base", metavar="NAME@sha256:ID",
                       help="a base image made locally (scripts/docker/build-offline.sh) instead of the pinned one")
    sub.add_parser("compose-env", help="print .env lines for docker compose")
    sub.add_parser("sync-locks", help="record the sha256 of requirements/*.txt")
    setd = sub.add_parser("set-digest", help="record a base image digest read from the registry")
    setd.add_argument("image")
    setd.add_argument("digest")
    setd.add_argument("--source", help="where the digest was read (recorded in manifest.lock)")
    args = parser.parse_args(argv)
    path = Path(args.lock) if args.lock else pins.lock_path()
    try:
        lock = pins.load_lock(path)
        root = path.resolve().parent
        if args.cmd == "check":
            problems = pins.stale_python_locks(lock, root) + stale_build_files(lock, root)
            for line in problems:
                print(line, file=sys.stderr)
            return 1 if problems else 0
        if args.cmd == "build-args":
            print(" ".join(build_args(lock, args.image, args.offline_base)))
        elif args.cmd == "compose-env":
            print("\n".join(compose_env(lock)))
        elif args.cmd == "sync-locks":
            files = sorted(p.relative_to(root).as_posix() for p in (root / "requirements").glob("*.txt"))
            lock["python_locks"] = {rel: {"sha256": sha256_file(root / rel)} for rel in files}
            pins.write_lock(lock, path)
            sync_build_files(lock, root)
        elif args.cmd == "set-digest":
            img = pins.find_pin(lock, "images", args.image)
            img.update(digest=args.digest, status="pinned", source=args.source
                       or f"set with `pins set-digest` on {time.strftime('%Y-%m-%d', time.gmtime())}")
            pins.write_lock(lock, path)
            sync_build_files(lock, root)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
