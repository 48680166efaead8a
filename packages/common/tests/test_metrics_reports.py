"""Caption statistics against direct computations; metrics JSON and PNG plots written into a run directory."""

import json
import random
from collections import Counter

import numpy as np
import pytest
import torch

from vlforge.common.errors import VLForgeError
from vlforge.common.metrics import (
    caption_lengths,
    length_stats,
    plot_length_histograms,
    plot_recall_bars,
    plot_word_frequencies,
    read_metrics,
    retrieval_metrics,
    word_frequencies,
    write_metrics,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def texts():
    rng = random.Random(0)
    words = ["red", "circle", "blue", "square", "stock", "photo", "the", "a", "left", "of"]
    return {"alt_text": [" ".join(rng.choices(words, k=rng.randint(2, 9))) for _ in range(50)],
            "gt": [" ".join(rng.choices(words[:4] + words[6:], k=rng.randint(8, 20))) + "." for _ in range(40)]}


def test_length_stats_match_direct(texts):
    lengths = caption_lengths(texts)
    assert lengths["gt"] == [len(t.split()) for t in texts["gt"]]
    stats = length_stats(lengths)
    for source, values in lengths.items():
        ordered = sorted(values)
        assert stats[source]["count"] == len(values)
        assert stats[source]["mean"] == pytest.approx(sum(values) / len(values))
        assert stats[source]["std"] == pytest.approx(float(np.std(values)))
        assert stats[source]["median"] == float(np.median(values))
        assert stats[source]["p90"] == ordered[int(np.ceil(0.9 * len(values))) - 1]
        assert (stats[source]["min"], stats[source]["max"]) == (ordered[0], ordered[-1])
    assert caption_lengths({"x": ["a b", "c"]}, count_tokens=len) == {"x": [3, 1]}


def test_word_frequencies_match_counter(texts):
    freq = word_frequencies(texts, top_k=5)
    for source, captions in texts.items():
        counts = Counter(w.strip(".") for t in captions for w in t.lower().split())
        want = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        assert freq[source]["top"] == [list(x) for x in want]
        assert freq[source]["vocabulary_size"] == len(counts)
        assert freq[source]["num_words"] == sum(counts.values())
    assert "stock" not in dict(freq["gt"]["top"])


def test_json_and_pngs_in_run_directory(tmp_path, texts):
    g = torch.Generator().manual_seed(0)
    owner = torch.arange(10).repeat_interleave(2)
    sim = torch.randn(10, 20, generator=g)
    results = {"alt_text": retrieval_metrics(sim, owner), "alt+gt": retrieval_metrics(sim + 0.5 * torch.eye(10)
                                                                                      .repeat_interleave(2, 1), owner)}
    lengths = caption_lengths(texts)
    metrics = {"retrieval": results, "lengths": length_stats(lengths), "words": word_frequencies(texts),
               "tensor": torch.tensor([1.5, 2.5]), "scalar": torch.tensor(3), "numpy": np.float32(0.5),
               "nan": float("nan")}
    path = write_metrics(tmp_path / "run", metrics)
    loaded = json.loads(path.read_text())
    assert loaded == read_metrics(path)
    assert loaded["retrieval"]["alt_text"]["t2i_r1"] == pytest.approx(results["alt_text"]["t2i_r1"])
    assert loaded["tensor"] == [1.5, 2.5] and loaded["scalar"] == 3 and loaded["numpy"] == 0.5
    assert loaded["nan"] is None
    assert not list((tmp_path / "run").glob("*.tmp"))
    pngs = [plot_recall_bars(results, tmp_path / "run" / "recall.png"),
            plot_length_histograms(lengths, tmp_path / "run" / "lengths.png"),
            plot_word_frequencies(word_frequencies(texts), tmp_path / "run" / "words.png")]
    for png in pngs:
        data = png.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 2000


def test_report_errors(tmp_path):
    with pytest.raises(VLForgeError, match="metric 'metrics.obj' has a value of type object"):
        write_metrics(tmp_path, {"obj": object()})
    with pytest.raises(VLForgeError, match="result 'x' has no 't2i_r1'"):
        plot_recall_bars({"x": {}}, tmp_path / "r.png")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(VLForgeError, match="cannot read metrics file"):
        read_metrics(tmp_path / "bad.json")
    with pytest.raises(VLForgeError, match="source 'x' has no captions"):
        length_stats({"x": []})
