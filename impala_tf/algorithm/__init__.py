"""The algorithm: V-trace, the losses, the learner's step, replay and the
hyperparameters population-based training evolves."""
