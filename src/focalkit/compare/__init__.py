"""Experiments behind the command line: data, training protocol, statistics, reports, plots.

Never imported by the losses; needs the ``[cli]`` extra.
"""
