"""A plain verdict on posterior collapse from the numbers ``zoo diagnose`` printed (issue 20).

    healthy            every latent unit is active (Burda et al. 2015: Cov_x E_q[z_d] > threshold)
    partly collapsed   k of D units active: the other D - k carry no information about x
    collapsed          no unit active (or a codebook with one code used): the decoder ignores z

For a model without units to count (a diffusion model's fixed noising encoder) there is no collapse to judge, and
the verdict says so; a VQ model's verdict counts codebook entries used instead of units.
"""
from __future__ import annotations

from typing import Any


def verdict(report: dict[str, Any]) -> str:
    """One line: the verdict and the numbers it rests on (all of them printed above it by format_report)."""
    rate = report.get("rate")
    rate_text = f"; rate {rate:.2f} nats" if isinstance(rate, (int, float)) else ""
    if report.get("codebook_size"):
        used, size = report.get("codebook_usage"), report["codebook_size"]
        if used is None:
            return "verdict: not judged (codebook usage not measured)"
        if used <= 1:
            return f"verdict: collapsed: {used} of {size} codebook entries used (every image gets the same code)"
        word = "healthy" if used == size else "partly collapsed"
        return f"verdict: {word}: {used} of {size} codebook entries used{rate_text}"
    units, dims = report.get("active_units"), report.get("latent_dims")
    if report.get("active_channels") is not None and units is None:
        units, dims = report["active_channels"], len(report.get("active_units_per_channel") or [])
        what = "latent channels"
    else:
        what = "latent units"
    if units is None or not dims:
        reason = str(report.get("active_units_note") or "no active-unit count for this model")
        if reason.startswith("not applicable: "):
            return f"verdict: no collapse to judge: {reason.removeprefix('not applicable: ')}"
        return f"verdict: not judged ({reason})"
    if units == 0:
        return (f"verdict: collapsed: 0 of {dims} {what} active: the decoder ignores z{rate_text} "
                f"(try a smaller beta, KL warm-up or a weaker decoder)")
    if units < dims:
        return f"verdict: partly collapsed: {units} of {dims} {what} active{rate_text}"
    return f"verdict: healthy: all {dims} {what} active{rate_text}"
