"""Many readers beside one writer: DataLoader workers (fork and spawn) read while another process appends; the map
grows by itself from a tiny size, and a reader in another process follows the growth."""

import io
import operator
import subprocess
import sys
import textwrap

import pytest
from PIL import Image
from torch.utils.data import DataLoader

from vlforge.common.records import Caption, ImageRecord
from vlforge.common.store import CaptionDataset, CaptionStore, collate_image_records, environments
from vlforge.common.store.verify import verify_store

TINY_MAP = 32 << 10


def png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (value % 256, 7, 9)).save(buf, "PNG")
    return buf.getvalue()


def records(start: int, stop: int, split: str = "train") -> list[ImageRecord]:
    return [ImageRecord(f"r{i:06d}", split, 8, 8, [Caption(f"caption {i}", "gt", "short")], image_bytes=png(i),
                        meta={"value": i % 256}) for i in range(start, stop)]


APPENDER = textwrap.dedent("""
    import sys
    from vlforge.common.records import Caption, ImageRecord
    from vlforge.common.store import CaptionStore
    store = CaptionStore(sys.argv[1], readonly=False)
    ids = store.ids("train")
    round = 0
    while sys.stdin.readline().strip() == "more":
        store.append_captions({i: [Caption(f"extra {round}", "writer", "dense")] for i in ids})
        store.put_records([ImageRecord(f"new{round:04d}-{k}", "train", 8, 8, [Caption("n", "writer")],
                                       image_bytes=bytes(3000)) for k in range(20)])
        round += 1
        print("committed", round, flush=True)
""")


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_workers_read_while_another_process_writes(tmp_path, context):
    path = tmp_path / "s"
    store = CaptionStore.create(path, map_size=TINY_MAP)
    store.put_records(records(0, 120))
    store.close()
    dataset = CaptionDataset(path, split="train", transform=operator.methodcaller("getpixel", (0, 0)))
    assert dataset[3][1].image_id == "r000003"  # the parent has the environment open when workers start
    writer = subprocess.Popen([sys.executable, "-c", APPENDER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        loader = DataLoader(dataset, batch_size=16, num_workers=2, collate_fn=collate_image_records,
                            multiprocessing_context=context, persistent_workers=True)
        seen, commits = [], 0
        for _epoch in range(2):
            for pixels, recs in loader:
                writer.stdin.write("more\n")
                writer.stdin.flush()
                assert writer.stdout.readline().startswith("committed")  # a commit lands mid-epoch
                commits += 1
                for value, rec in zip(pixels, recs):
                    assert value[0] == rec.meta["value"]  # the image belongs to its record
                    assert rec.captions[0].text == f"caption {int(rec.image_id[1:])}"
                seen.extend(r.image_id for r in recs)
        writer.stdin.write("stop\n")
        writer.stdin.flush()
        assert writer.wait(timeout=60) == 0
    finally:
        writer.kill()
    assert sorted(seen) == sorted([f"r{i:06d}" for i in range(120)] * 2)
    final = CaptionStore(path)
    assert final.counts()["images"] == 120 + 20 * commits
    assert final.counts()["by_source"]["writer"] == 120 * commits + 20 * commits
    assert verify_store(final, check_images=False).ok  # the writer embeds filler bytes, not images


def test_map_grows_from_a_tiny_size(tmp_path):
    store = CaptionStore.create(tmp_path / "s", map_size=TINY_MAP)
    env = environments.environment(store._key)
    before = env.info()["map_size"]
    store.put_records(records(0, 600), batch_size=300)
    store.append_captions({f"r{i:06d}": [Caption("x" * 2000, "long", "dense")] for i in range(600)})
    assert env.info()["map_size"] >= 16 * before
    assert len(store) == 600 and store.get("r000599").captions[-1].text == "x" * 2000
    assert verify_store(store, check_images=False).ok


READER = textwrap.dedent("""
    import sys
    from vlforge.common.store import CaptionStore
    store = CaptionStore(sys.argv[1], readonly=True, map_size=32 << 10)
    print(len(store), flush=True)
    sys.stdin.readline()
    print(len(store), sum(len(r.captions) for r in store.iter_records()), flush=True)
""")


def test_reader_in_another_process_follows_map_growth(tmp_path):
    path = tmp_path / "s"
    store = CaptionStore.create(path, map_size=TINY_MAP)
    store.put_records(records(0, 10))
    reader = subprocess.Popen([sys.executable, "-c", READER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().split() == ["10"]
        padded = records(10, 800)
        for rec in padded:
            rec.meta["pad"] = "x" * 4000
        store.put_records(padded, batch_size=400)  # grows the map far past the reader's mapping
        assert environments.environment(store._key).info()["map_size"] > 64 * TINY_MAP
        reader.stdin.write("go\n")
        reader.stdin.flush()
        assert reader.stdout.readline().split() == ["800", "800"]
        assert reader.wait(timeout=60) == 0
    finally:
        reader.kill()
