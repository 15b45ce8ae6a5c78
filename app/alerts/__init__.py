"""Alerts: rules evaluated in the job worker on what Proxboard already knows, messages through Apprise.

``engine.evaluate`` is the one pass per interval; ``delivery`` speaks to the channels; ``services``
holds what the (coming) pages call; ``tasks`` registers the pass with the worker.
"""
