"""Files the code reads at run time, shipped inside the package (wheels included).

``prompts/`` (system prompts), ``taxonomy/`` (the 18 task categories), ``knowledge/`` (category
workflows). They are package data rather than a top-level ``data/`` folder so that a
non-editable install (a wheel on a cluster, which is how verl's Ray workers get packages) finds
them; the sample data files of the recipes stay in the repository's ``data/samples``.
"""

from pathlib import Path

PACKAGE_DATA = Path(__file__).resolve().parent
