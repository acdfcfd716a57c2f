"""The hyperparameters that population-based training evolves, as variables.

`Hyperparameters` holds the base learning rate (the linear schedule
multiplies it), the entropy cost, RMSProp's epsilon and the global
gradient-norm clip (0: none) as float64 `tf.Variable`s, initialised from a
`LearnerConfig`. The learner's step reads them, so assigning new values
changes the next update without a retrace or a restart; they are saved in
checkpoints (`checkpoints.make_checkpoint`), so a resumed run keeps evolved
values. float64 keeps a value exactly as given (the step casts to float32
where the float32 computation used the Python float before).
"""

import math

import tensorflow as tf

from impala_tf.pbt import rule as pbt_rule

NAMES = pbt_rule.EVOLVABLE  # Written there: the supervisor loads no TF.


class Hyperparameters(tf.Module):
    """One float64 scalar variable per name in `NAMES`.

    Args:
      config: a `config.LearnerConfig` (its fields of those names are the
        initial values).
    """

    def __init__(self, config):
        super().__init__(name="hyperparameters")
        for name in NAMES:
            setattr(self, name, tf.Variable(
                float(getattr(config, name)), dtype=tf.float64,
                trainable=False, name=name))

    def values(self):
        """{name: float} of the current values."""
        return {name: float(getattr(self, name).numpy()) for name in NAMES}

    def assign(self, values):
        """Sets some or all of them from {name: float}. Raises ValueError for
        an unknown name or a value that is negative or not finite (nothing
        is assigned then)."""
        unknown = sorted(set(values) - set(NAMES))
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) {unknown}; known: "
                             f"{list(NAMES)}")
        for name, value in values.items():
            if not math.isfinite(float(value)) or float(value) < 0:
                raise ValueError(f"hyperparameter {name}={value} is not a "
                                 "finite value >= 0")
        for name, value in values.items():
            getattr(self, name).assign(float(value))
