"""What the experiment scripts share: the family registry, the run pipeline, the comparison
grid, the results schema, the studies and the report. The scripts beside this package
(``experiments/*.py``) are thin command lines over it; the library (``flowlab``) never
imports it.

Importing it turns on JAX's persistent compilation cache (:func:`flowlab.enable_compile_cache`:
``~/.cache/flowlab/jax``, or the folder in ``FLOWLAB_COMPILE_CACHE``; ``off`` turns it off),
so that a second run of a script, the grid's many trainings and CI's smoke runs load their
compiled programs instead of compiling them again.
"""

import flowlab as _flowlab

_flowlab.enable_compile_cache()
