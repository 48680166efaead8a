"""The example of packages/common/README.md ("Building a new method on vlforge.common.lm") runs as written."""

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs_and_trains_only_the_adapters():
    section = README.read_text().split("## Building a new method on vlforge.common.lm", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 25
    torch.manual_seed(0)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        scope: dict = {}
        exec(compile(code, str(README), "exec"), scope)  # noqa: S102 - the repository's own README example
    finally:
        torch.set_num_threads(before)
    kl, policy, reference = scope["kl"], scope["policy"], scope["reference"]
    assert torch.isfinite(kl) and abs(kl.item()) < 1e-5  # before the step the policy equals its reference copy
    lora_b = [p for n, p in policy.model.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # the step moved the adapters (they start at 0)
    assert not any(p.requires_grad for p in reference.parameters())
