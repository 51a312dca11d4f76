"""The quota service: per-namespace and per-repository usage accounting, crossings, reconcile."""
