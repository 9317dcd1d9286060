"""Results a user can look at: score heat maps (``heatmap``) and self-contained HTML pages (``page``)."""
