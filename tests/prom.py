"""Reading Prometheus exposition text in tests."""

from __future__ import annotations


def metric_value(text: str, name: str, **labels) -> float:
    """The sum of every sample of ``name`` whose labels include ``labels`` (0 when none)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total
