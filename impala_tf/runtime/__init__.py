"""The run-time: actor processes, their supervisor and watchdog, the
learner's loop, checkpoints, the run directory, progress output and the
trainer that connects them."""
