"""What the experiment scripts share: the family registry, the run pipeline, the comparison
grid, the results schema, the studies and the report. The scripts beside this package
(``experiments/*.py``) are thin command lines over it; the library (``flowlab``) never
imports it."""
