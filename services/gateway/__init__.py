"""The gateway: the suite's single entrypoint, routing each client to its region's registry and
failing over to a healthy region."""
