"""The study of the design (docs/report.md): experiments, baselines and report tables. It imports the package and is
not installed with it; its commands run from the checkout's root as `python -m study.<name>`."""
