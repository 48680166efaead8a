"""Critic-rewrite's model-free baseline (#12 item 5): drop the sentences the critic judged inconsistent.

A sentence without a verdict (unscored: no verdict line, a decode failure) is kept, as the issue's bad-input rule
asks: only a judged-inconsistent sentence is removed.
"""

from __future__ import annotations

from vlforge.common.errors import VLForgeError


def drop_inconsistent(sentences: list[str], verdicts: list[bool | None]) -> str:
    """The sentences whose verdict is not False, in order, joined by single spaces ("" when none is left)."""
    if len(sentences) != len(verdicts):
        raise VLForgeError(f"drop_inconsistent: {len(sentences)} sentences but {len(verdicts)} verdicts")
    return " ".join(s for s, verdict in zip(sentences, verdicts) if verdict is not False)
