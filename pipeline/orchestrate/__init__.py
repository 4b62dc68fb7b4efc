"""Prefect wiring: the decisions a run takes (pure), thin tasks, the flow, the Prefect API and the task runners."""
