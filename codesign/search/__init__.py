"""The joint search: architecture x per-layer bit-widths x accelerator configuration.

config.py   the search config file (TOML) and its checks
problem.py  one candidate: how a trial chooses it and how it is measured
runner.py   joint and sequential strategies on optuna studies (SQLite, resumable)
pareto.py   fronts, hypervolume, knee point
artifacts.py / qdq.py  the files a deployment engineer takes away
"""
