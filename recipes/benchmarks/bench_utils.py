"""Helpers the benchmark scripts share: seed statistics, their formatting, a start deadline."""

import datetime as dt
import statistics
from typing import Optional


def seed_stats(values: list) -> dict:
    """Mean, sample standard deviation, min, max and count of per-seed values."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def fmt_stats(s: Optional[dict], digits: int = 3) -> str:
    """`mean ± std (min–max)`, just the mean for one value, `—` for none."""
    if not s:
        return "—"
    spread = f" ± {s['std']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})" if s["n"] > 1 else ""
    return f"{s['mean']:.{digits}f}{spread}"


def parse_deadline(text: Optional[str]) -> Optional[dt.datetime]:
    """`HH:MM` (UTC) today, after which a benchmark starts no new run; None for no deadline."""
    if not text:
        return None
    hour, minute = map(int, text.split(":"))
    return dt.datetime.now(dt.timezone.utc).replace(hour=hour, minute=minute, second=0, microsecond=0)
