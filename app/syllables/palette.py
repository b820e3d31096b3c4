"""One colour per syllable index, the same everywhere in the app (viewer, gallery, charts)."""

from __future__ import annotations

# 40 distinguishable colours: saturated first, then lighter and darker variants.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#e6550d", "#31a354", "#ad494a", "#756bb1", "#843c39",
    "#d6616b", "#636363", "#8ca252", "#3182bd", "#6baed6", "#fd8d3c", "#74c476", "#ff9896",
    "#9e9ac8", "#c49c94", "#f7b6d2", "#bdbdbd", "#cedb9c", "#9edae5", "#5254a3", "#e7ba52",
    "#637939", "#7b4173", "#a55194", "#ce6dbd", "#de9ed6", "#b5cf6b", "#e7969c", "#6b6ecf",
)  # fmt: skip


def syllable_color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]
