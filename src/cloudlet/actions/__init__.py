"""The action engine: actions and their tasks, what each state allows, procedures, and the durable runner."""
