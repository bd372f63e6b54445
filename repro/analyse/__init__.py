"""Analyses behind claims 5 and 6: layer-wise weight change and harmful/harmless separation
(``layers``), divergence of the VL-adaptation and safety objectives (``objectives``), and the
figures they and the merge sweep produce (``plots``)."""
