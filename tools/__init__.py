"""Commands that run no Beam pipeline: `verify`, `report` and `export` read a finished
run; `sample` writes a synthetic release.
"""
