"""The ConfigSpec paper's figures (Figs. 2-6) drawn for any spec.

`data` gathers what a figure shows (every candidate, and the solver's
choices) without matplotlib; `draw` turns it into PNG or SVG.  Import
`draw` only when a figure is wanted: the edge install has no matplotlib.
"""
