"""The paper's DeepMind Lab action set, written out independently of the
library, for the tests of dmlab_common, dmlab and the fake Lab. A support
module, not a test file."""

# The paper's Table D.2: 9 actions as DeepMind Lab's 7 integers
# (look left/right, look down/up, strafe, move back/forward, fire, jump,
# crouch).
TABLE_D2 = [
    [0, 0, 0, 1, 0, 0, 0],     # Forward
    [0, 0, 0, -1, 0, 0, 0],    # Backward
    [0, 0, -1, 0, 0, 0, 0],    # Strafe Left
    [0, 0, 1, 0, 0, 0, 0],     # Strafe Right
    [-20, 0, 0, 0, 0, 0, 0],   # Look Left
    [20, 0, 0, 0, 0, 0, 0],    # Look Right
    [-20, 0, 0, 1, 0, 0, 0],   # Forward + Look Left
    [20, 0, 0, 1, 0, 0, 0],    # Forward + Look Right
    [0, 0, 0, 0, 1, 0, 0],     # Fire
]
