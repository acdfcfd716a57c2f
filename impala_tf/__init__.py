"""impala_tf: IMPALA (Espeholt et al. 2018) in TensorFlow 2 and Sonnet 2."""

__version__ = "0.1.0"
