"""Download public token shards: python -m workloads.lm.fetch fineweb10B --shards N [--dir DIR] [--url URL].

Each file is downloaded to `<name>.part` (resumed with an HTTP Range request after a cut connection or on a rerun),
its header and length checked (magic, version, token count matching the size), its SHA-256 compared with the one
the server publishes (Hugging Face's X-Linked-Etag for LFS files) where it publishes one, then renamed into place
and recorded in `manifest.json`, whose SHA-256s the trial's data fingerprint uses.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import re
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from workloads.files import atomic_write_json
from workloads.lm.data import MANIFEST, default_dir, read_manifest, read_shard


@dataclass(frozen=True)
class Dataset:
    url: str  # the directory the files are served from
    val: tuple[str, ...]
    train: str  # format of the i-th training shard's name, i = 1 ... max_train
    max_train: int
    tokens_per_shard: str  # for the help text


DATASETS = {
    # FineWeb's 10B-token sample (HuggingFaceFW/fineweb, sample-10BT) tokenised with GPT-2's tokenizer by llm.c's
    # dev/data/fineweb.py, as published for modded-nanogpt (its data/cached_fineweb10B.py downloads these files).
    "fineweb10B": Dataset(
        url="https://huggingface.co/datasets/kjj0/fineweb10B-gpt2/resolve/main",
        val=("fineweb_val_000000.bin",),
        train="fineweb_train_{:06d}.bin",
        max_train=103,
        tokens_per_shard="100M",
    ),
}
CHUNK = 1 << 20
RETRIES = 5  # further attempts after a connection that delivered bytes and then broke


class FetchError(Exception):
    """A download that cannot complete: its message is the one line the user sees."""


def file_names(dataset: Dataset, shards: int) -> list[str]:
    return [*dataset.val, *(dataset.train.format(i) for i in range(1, shards + 1))]


def published_sha256(responses) -> str | None:
    """The SHA-256 that Hugging Face names in X-Linked-Etag for an LFS file (on its redirect to the storage
    host), or None where no response names one."""
    for headers in responses:
        tag = (headers.get("X-Linked-Etag") or "").strip('W/"')
        if re.fullmatch(r"[0-9a-f]{64}", tag):
            return tag
    return None


class KeepRedirectHeaders(urllib.request.HTTPRedirectHandler):
    """Follows redirects as urllib does, keeping each redirect's headers (where Hugging Face names the hash)."""

    def __init__(self):
        self.headers = []

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        self.headers.append(headers)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def describe(dataset: Dataset, shards: int) -> str:
    names = file_names(dataset, shards)
    return f"{names[0]} and {names[1]}" + (f" … {names[-1]}" if shards > 1 else "")


def download(url: str, part: Path, bar: tqdm) -> str | None:
    """Append `url`'s bytes to `part` from its current length, retrying while attempts make progress; returns
    the SHA-256 the server publishes for the file, if any."""
    published, failures = None, 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        redirects = KeepRedirectHeaders()
        received = 0
        try:
            with urllib.request.build_opener(redirects).open(request, timeout=60) as response:
                published = published or published_sha256([*redirects.headers, response.headers])
                if have and response.status != 206:  # the server ignored the range: start the file over
                    have = 0
                    bar.reset()
                bar.total = have + int(response.headers.get("Content-Length") or 0)
                bar.n = have
                with open(part, "ab" if have else "wb") as f:
                    while chunk := response.read(CHUNK):
                        f.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                if bar.total and have + received < bar.total:
                    raise http.client.IncompleteRead(b"", bar.total - have - received)
            return published
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # nothing left to send: the part is already whole
                return published
            raise FetchError(f"{url}: HTTP {e.code} {e.reason}") from e
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as e:
            failures += 1
            if received == 0 or failures > RETRIES:
                reason = getattr(e, "reason", None) or e
                raise FetchError(f"{url}: {reason}") from e


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_file(name: str, base_url: str, directory: Path, manifest: dict) -> None:
    """Download, check and record one shard (nothing to do when the manifest already holds it at its size)."""
    final, part = directory / name, directory / f"{name}.part"
    entry = manifest["files"].get(name)
    if final.exists() and entry and entry.get("bytes") == final.stat().st_size:
        return
    if not final.exists():
        with tqdm(desc=name, unit="B", unit_scale=True, unit_divisor=1024, mininterval=1.0) as bar:
            published = download(f"{base_url}/{name}", part, bar)
        try:
            tokens = len(read_shard(part))
        except ValueError as e:
            part.unlink()
            raise FetchError(f"{name}: {e} — removed; rerun to download it again") from e
        sha = sha256_of(part)
        if published and sha != published:
            part.unlink()
            raise FetchError(f"{name}: SHA-256 {sha} differs from the published {published}: refused and removed")
        part.rename(final)
    else:  # renamed into place before the manifest was written (an interrupted run): check and record it
        tokens, sha = len(read_shard(final)), sha256_of(final)
    manifest["files"][name] = {"sha256": sha, "bytes": final.stat().st_size, "tokens": tokens}
    atomic_write_json(directory / MANIFEST, manifest)


def fetch(name: str, shards: int, directory: Path, base_url: str | None = None) -> list[Path]:
    """Fetch the validation shard(s) and `shards` training shards of dataset `name` into `directory`."""
    dataset = DATASETS[name]
    base_url = (base_url or dataset.url).rstrip("/")
    directory.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(directory)
    manifest = {"dataset": name, "source": base_url, "files": manifest.get("files", {})}
    names = file_names(dataset, shards)
    for file in names:
        fetch_file(file, base_url, directory, manifest)
    return [directory / file for file in names]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workloads.lm.fetch", description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help=f"one of: {', '.join(DATASETS)}")
    parser.add_argument("--shards", type=int, default=1, help="training shards (100M tokens each) besides val")
    parser.add_argument("--dir", type=Path, help="where to put them (default $OPTBENCH_DATA/<dataset>)")
    parser.add_argument("--url", help="a mirror serving the same files (default: the dataset's source)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.dataset not in DATASETS:
        print(f"error: unknown dataset {args.dataset!r}; valid: {', '.join(DATASETS)}", file=sys.stderr)
        return 2
    dataset = DATASETS[args.dataset]
    if not 1 <= args.shards <= dataset.max_train:
        print(f"error: --shards must be between 1 and {dataset.max_train}, got {args.shards}", file=sys.stderr)
        return 2
    directory = (args.dir or default_dir(args.dataset)).expanduser()
    if directory.exists() and not directory.is_dir():
        print(f"error: --dir {directory} is not a directory", file=sys.stderr)
        return 2
    try:
        paths = fetch(args.dataset, args.shards, directory, args.url)
    except FetchError as e:
        url = (args.url or dataset.url).rstrip("/")
        print(
            f"error: {e}. Without network access here, fetch {describe(dataset, args.shards)} "
            f"from {url}/ elsewhere and put them in {directory}, then rerun this command to check and record them",
            file=sys.stderr,
        )
        return 1
    except OSError as e:
        print(f"error: {directory}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stopped: partial files are kept as *.part; rerun the same command to resume", file=sys.stderr)
        return 130
    tokens = sum(read_manifest(directory)["files"][p.name]["tokens"] for p in paths)
    print(f"{len(paths)} shards, {tokens:,} tokens in {directory} (checked; SHA-256s in {directory / MANIFEST})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
