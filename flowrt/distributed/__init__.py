"""Running flowrt past one machine: ``flowrt batch --ray`` (Ray is an optional extra)."""
