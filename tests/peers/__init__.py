"""Peer libraries' own test suites for their focal / cross-entropy / GHM-C losses, ported to call focalkit.

One module per peer; each names the file and commit it was ported from and the adapter that maps the
peer's conventions onto focalkit's.
"""
