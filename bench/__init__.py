"""`make bench`: performance figures of QC Collector, each against a baseline measured
in the same run on the same machine (see bench/run.py)."""
