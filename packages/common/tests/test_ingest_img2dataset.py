"""img2dataset output (files and webdataset layouts, with and without the input table) and WebDataset brace
notation. The folders are written as img2dataset writes them: keys by its compute_key, per-sample JSON, per-shard
parquet with every sample's status and _stats.json."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile

import pytest
from PIL import Image

from vlforge.common.errors import VLForgeError
from vlforge.common.ingest import ingest
from vlforge.common.ingest.img2dataset import compute_key
from vlforge.common.store import CaptionStore

PER_SHARD = 3  # not a power of ten: img2dataset keys shard 1's first row 000010, not 000003
ROWS = [(f"photo number {n}", f"http://example.com/{n}.jpg") for n in range(7)]
FAILED_ROW = 4


def _jpeg(n: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (10 + n, 8), (20 * n, 0, 0)).save(buf, "JPEG")
    return buf.getvalue()


def _write_output(folder, layout: str) -> dict[int, str]:
    """An img2dataset output folder of ROWS; returns {row: key}."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    folder.mkdir(parents=True)
    keys = {}
    for shard in range(0, len(ROWS), PER_SHARD):
        shard_id = shard // PER_SHARD
        name = f"{shard_id:05d}"
        rows, members = [], []
        for n in range(shard, min(shard + PER_SHARD, len(ROWS))):
            key = compute_key(n % PER_SHARD, shard_id, 1, 5)
            keys[n] = key
            caption, url = ROWS[n]
            ok = n != FAILED_ROW
            sample = {"url": url, "caption": caption, "key": key, "status": "success" if ok else "failed_to_download",
                      "error_message": None if ok else "HTTP 404", "width": 10 + n if ok else None,
                      "height": 8 if ok else None, "original_width": 100 + n if ok else None,
                      "original_height": 80 if ok else None}
            rows.append(sample)
            if ok:
                members += [(f"{key}.jpg", _jpeg(n)), (f"{key}.txt", caption.encode()),
                            (f"{key}.json", json.dumps(sample).encode())]
        pq.write_table(pa.Table.from_pylist(rows), folder / f"{name}.parquet")
        failures = sum(r["status"] != "success" for r in rows)
        (folder / f"{name}_stats.json").write_text(json.dumps(
            {"count": len(rows), "successes": len(rows) - failures, "failed_to_download": failures,
             "failed_to_resize": 0}))
        if layout == "files":
            (folder / name).mkdir()
            for member, data in members:
                (folder / name / member).write_bytes(data)
        else:
            with tarfile.open(folder / f"{name}.tar", "w") as tar:
                for member, data in members:
                    info = tarfile.TarInfo(member)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return keys


@pytest.mark.parametrize("layout", ["files", "webdataset"])
def test_img2dataset_output_without_input_table(tmp_path, layout):
    keys = _write_output(tmp_path / "out", layout)
    assert keys[3] == "000010" and keys[6] == "000020"
    store = CaptionStore.create(tmp_path / "s")
    summary = ingest(store, "img2dataset", tmp_path / "out")
    assert summary.added == 6 and dict(summary.skipped) == {"failed_download": 1}
    assert store.ids() == sorted(k for n, k in keys.items() if n != FAILED_ROW)
    record = store.get(keys[5])
    assert [c.text for c in record.captions] == ["photo number 5"] and record.captions[0].source == "alt_text"
    meta = record.meta["img2dataset"]
    assert meta["url"] == "http://example.com/5.jpg" and meta["original_width"] == 105 and meta["status"] == "success"
    assert store.load_image(record).size == (15, 8)
    assert (record.image_bytes is None) == (layout == "files")


def test_img2dataset_failures_counted_from_stats_without_parquet(tmp_path):
    _write_output(tmp_path / "out", "files")
    for parquet in (tmp_path / "out").glob("*.parquet"):
        parquet.unlink()
    summary = ingest(CaptionStore.create(tmp_path / "s"), "img2dataset", tmp_path / "out")
    assert summary.added == 6 and dict(summary.skipped) == {"failed_download": 1}


@pytest.mark.parametrize("table_format", ["tsv", "parquet"])
def test_img2dataset_with_its_input_table(tmp_path, table_format):
    keys = _write_output(tmp_path / "out", "files")
    rows = [(f"table caption {n}", url) for n, (_, url) in enumerate(ROWS)]
    if table_format == "tsv":
        table = tmp_path / "input.tsv"
        table.write_text("caption\turl\n" + "".join(f"{c}\t{u}\n" for c, u in rows))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = tmp_path / "input.parquet"
        pq.write_table(pa.Table.from_pylist([{"caption": c, "url": u} for c, u in rows]), table)
    store = CaptionStore.create(tmp_path / "s")
    summary = ingest(store, "img2dataset", table, tmp_path / "out")
    assert summary.added == 6 and dict(summary.skipped) == {"failed_download": 1}
    assert {r.image_id: r.captions[0].text for r in store.iter_records()} == {
        keys[n]: f"table caption {n}" for n in range(7) if n != FAILED_ROW}


def test_fifo_sidecar_or_input_table_never_blocks(tmp_path):
    # Run in a subprocess with a timeout: before the regular-file check, reading a FIFO blocked forever.
    keys = _write_output(tmp_path / "out", "files")
    (tmp_path / "out" / "00000" / f"{keys[1]}.txt").unlink()
    os.mkfifo(tmp_path / "out" / "00000" / f"{keys[1]}.txt")
    os.mkfifo(tmp_path / "input.tsv")
    cli = "import sys; from vlforge.common.store_cli import main; sys.exit(main(sys.argv[1:]))"

    def ingest_cli(*args):
        return subprocess.run([sys.executable, "-c", cli, "ingest", *map(str, args), "--format", "img2dataset",
                               "--json"], capture_output=True, text=True, timeout=60)

    proc = ingest_cli(tmp_path / "s", "--annotations", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert json.loads(proc.stdout)["skipped"] == {"failed_download": 1, "malformed_entry": 1}
    assert keys[1] not in CaptionStore(tmp_path / "s").ids() and len(CaptionStore(tmp_path / "s")) == 5
    proc = ingest_cli(tmp_path / "t", "--annotations", tmp_path / "input.tsv", "--images", tmp_path / "out")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"input table {str(tmp_path / 'input.tsv')!r} cannot be read: not a regular file" in proc.stderr


def test_webdataset_brace_notation(tmp_path):
    _write_output(tmp_path / "out", "webdataset")
    store = CaptionStore.create(tmp_path / "s")
    summary = ingest(store, "webdataset", str(tmp_path / "out" / "{00000..00001}.tar"))
    assert summary.added == 5 and len(store) == 5  # shards 0 and 1: 6 rows, one failed download
    with pytest.raises(VLForgeError, match=r"00003\.tar' \(from .*\{00000\.\.00005\}\.tar'\) does not exist"):
        ingest(store, "webdataset", str(tmp_path / "out" / "{00000..00005}.tar"))


def test_key_scheme_matches_img2dataset_compute_key():
    from vlforge.common.ingest.img2dataset import KeyScheme

    assert [KeyScheme(5000, 5).key(r) for r in (0, 4999, 5000, 12345)] == [
        "000000000", "000004999", "000010000", "000022345"]
    assert [KeyScheme(10000, 5).key(r) for r in (42, 10000)] == ["000000042", "000010000"]


def test_cc3m_reader_keys_rows_as_img2dataset_did(tmp_path):
    keys = _write_output(tmp_path / "out", "files")
    tsv = tmp_path / "cc.tsv"
    tsv.write_text("".join(f"{c}\t{u}\n" for c, u in ROWS))
    store = CaptionStore.create(tmp_path / "s")
    summary = ingest(store, "cc3m", tsv, tmp_path / "out")
    assert summary.added == 6 and dict(summary.skipped) == {"missing_image": 1}
    assert {r.image_id: r.captions[0].text for r in store.iter_records()} == {
        keys[n]: ROWS[n][0] for n in range(7) if n != FAILED_ROW}
