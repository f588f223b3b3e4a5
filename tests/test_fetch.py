"""python -m workloads.lm.fetch against a local HTTP server serving small shards (no network in tests): download,
resume after a cut connection, checksum mismatch refused, and a trial that then reads the fetched shards."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import threading
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FAST, cli
from workloads.lm import fetch
from workloads.lm.data import MANIFEST, SHARD_HEADER_BYTES, load_tokens, write_shard


def shard_bytes(tmp_path: Path, tokens: int, seed: int) -> bytes:
    path = tmp_path / f"source-{seed}.bin"
    write_shard(path, np.random.default_rng(seed).integers(0, 50257, size=tokens))
    return path.read_bytes()


class Server:
    """Serves `files` as Hugging Face does: /resolve/main/<name> redirects to /store/<name> with the file's SHA-256
    in X-Linked-Etag; /store honours Range requests. `cut[name] = n` sends only n bytes of the next full response
    and closes the connection; `published[name]` overrides the advertised hash."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.cut, self.published, self.requests = files, {}, {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                server.requests.append((self.path, self.headers.get("Range")))
                if name not in server.files:
                    self.send_error(404)
                elif self.path.startswith("/resolve/main/"):
                    self.send_response(302)
                    sha = server.published.get(name) or hashlib.sha256(server.files[name]).hexdigest()
                    self.send_header("X-Linked-Etag", f'"{sha}"')
                    self.send_header("Location", f"/store/{name}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self.send_body(name)

            def send_body(self, name):
                data, start = server.files[name], 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                if name in server.cut:
                    self.wfile.write(data[start : start + server.cut.pop(name)])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data[start:])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/resolve/main"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path):
    files = {
        "fineweb_val_000000.bin": shard_bytes(tmp_path, 6000, 0),
        "fineweb_train_000001.bin": shard_bytes(tmp_path, 30000, 1),
        "fineweb_train_000002.bin": shard_bytes(tmp_path, 30000, 2),
    }
    s = Server(files)
    yield s
    s.close()


def run_fetch(*args: str) -> tuple[int, str]:
    """The exit code and the error lines on stderr (progress bars, which also go there, left out)."""
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        code = fetch.main(["fineweb10B", *args])
    return code, "\n".join(line for line in err.getvalue().splitlines() if line.startswith("error:"))


def test_fetch_downloads_checks_and_records_each_shard(server, tmp_path):
    out = tmp_path / "data"
    code, err = run_fetch("--shards", "2", "--dir", str(out), "--url", server.url)
    assert code == 0, err
    manifest = json.loads((out / MANIFEST).read_text())
    assert sorted(manifest["files"]) == sorted(server.files)
    for name, data in server.files.items():
        assert (out / name).read_bytes() == data
        assert manifest["files"][name] == {
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "tokens": (len(data) - SHARD_HEADER_BYTES) // 2,
        }
    assert not list(out.glob("*.part"))
    before = len(server.requests)
    assert run_fetch("--shards", "2", "--dir", str(out), "--url", server.url)[0] == 0
    assert len(server.requests) == before  # everything recorded: nothing fetched again
    tokens = load_tokens({"source": "shards", "path": str(out / "*.bin"), "vocab_size": 50304})
    assert tokens.fingerprint.startswith("shards-sha256:")  # from the manifest's hashes


def test_a_cut_connection_resumes_from_where_it_stopped(server, tmp_path):
    out, name = tmp_path / "data", "fineweb_train_000001.bin"
    server.cut[name] = 20000
    code, err = run_fetch("--shards", "1", "--dir", str(out), "--url", server.url)
    assert code == 0, err
    assert (out / name).read_bytes() == server.files[name]
    assert (f"/store/{name}", "bytes=20000-") in server.requests


def test_a_rerun_resumes_a_part_file_left_by_an_earlier_run(server, tmp_path):
    out, name = tmp_path / "data", "fineweb_val_000000.bin"
    out.mkdir()
    (out / f"{name}.part").write_bytes(server.files[name][:5000])
    assert run_fetch("--shards", "1", "--dir", str(out), "--url", server.url)[0] == 0
    assert (out / name).read_bytes() == server.files[name]
    assert (f"/store/{name}", "bytes=5000-") in server.requests


def test_a_checksum_mismatch_is_refused_and_nothing_half_written_is_left(server, tmp_path):
    out, name = tmp_path / "data", "fineweb_train_000001.bin"
    server.published[name] = "0" * 64
    code, err = run_fetch("--shards", "1", "--dir", str(out), "--url", server.url)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "differs from the published" in err and "Traceback" not in err
    assert not (out / name).exists() and not (out / f"{name}.part").exists()
    assert name not in json.loads((out / MANIFEST).read_text())["files"]  # the val shard before it is kept


def test_without_network_it_says_what_to_fetch_and_where(tmp_path):
    code, err = run_fetch("--shards", "3", "--dir", str(tmp_path / "d"), "--url", "http://127.0.0.1:9/x")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "fineweb_val_000000.bin and fineweb_train_000001.bin … fineweb_train_000003.bin" in err
    assert str(tmp_path / "d") in err


@pytest.mark.parametrize("args", [("--shards", "0"), ("--shards", "104")])
def test_bad_shard_counts_are_refused(args, tmp_path):
    code, err = run_fetch(*args, "--dir", str(tmp_path))
    assert code == 2 and err.startswith("error: --shards")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_trial_finds_fetched_shards_in_the_default_directory(server, tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("OPTBENCH_DATA", str(root))
    args = [*FAST, "workload=lm_tiny", "workload/data=shards", "workload.tokens=4096", f"results_dir={tmp_path}/r"]
    missing = cli(args)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert f"no fineweb10B shards in {root / 'fineweb10B'}" in missing.stderr
    assert "python -m workloads.lm.fetch fineweb10B --shards N" in missing.stderr
    assert run_fetch("--shards", "2", "--url", server.url)[0] == 0
    assert (root / "fineweb10B" / MANIFEST).exists()
    done = cli(args)
    assert done.returncode == 0, done.stderr
    (summary,) = (tmp_path / "r").rglob("summary.json")
    record = json.loads(summary.read_text())
    assert record["status"] == "completed" and record["data_fingerprint"].startswith("shards-sha256:")
