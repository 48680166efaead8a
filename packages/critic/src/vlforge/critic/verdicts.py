"""Reading the critic's verdict out of a generated critique (ultra-detailed caption paper, Fig. 14: a critique
ends with its conclusion; vlforge's critiques end with one line ``Verdict: consistent|inconsistent``).

A verdict line, once the markdown emphasis characters ``*`` are removed and whitespace is trimmed, reads
``Verdict:`` then ``consistent`` or ``inconsistent`` (any letter case), optionally followed by punctuation or a
reason ("Verdict: inconsistent (the circle is blue)"). The last verdict line counts. Words elsewhere ("yes",
"eyes", "consistent with the background") never count: unlike FaithScore's ``"yes" in output``, a critique
without a verdict line is unparsed, never consistent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

VERDICT_LINE = re.compile(r"verdict:\s*(consistent|inconsistent)(?![a-z0-9_])", re.IGNORECASE)
VERDICT_WORDS = {True: "consistent", False: "inconsistent"}


def parse_verdict(text: str) -> bool | None:
    """True for consistent, False for inconsistent, None when ``text`` has no verdict line."""
    verdict = None
    for line in text.splitlines():
        match = VERDICT_LINE.match(line.replace("*", "").strip())
        if match:
            verdict = match.group(1).lower() == "consistent"
    return verdict


def verdict_line(consistent: bool) -> str:
    """The line a critique ends with: "Verdict: consistent" or "Verdict: inconsistent"."""
    return f"Verdict: {VERDICT_WORDS[consistent]}"


def tally_verdicts(texts: Iterable[str]) -> dict[str, int]:
    """Counts of consistent, inconsistent and unparsed critiques (an unparsed one is never consistent)."""
    counts = {"consistent": 0, "inconsistent": 0, "unparsed": 0}
    for text in texts:
        verdict = parse_verdict(text)
        counts["unparsed" if verdict is None else VERDICT_WORDS[verdict]] += 1
    return counts
