"""Export the policy as a SavedModel that runs without impala_tf or Sonnet.

The SavedModel has three functions:

  initial_state(batch_size: int32 []) -> state, a tuple of float32 [B, 256]
      tensors (LSTM hidden, cell) or () for a feed-forward agent;
  step(observation, prev_action, reward, done, state) -> dict with
      'action' int32 [B] (sampled), 'policy_logits' float32 [B, A],
      'baseline' float32 [B], 'state' (same structure as the input state);
  inputs() -> string []: a JSON document saying what `step` expects (see
      `describe_inputs`), also written beside the model as
      `assets/inputs.json`.

`observation` is a dict: 'frame' uint8 [B, H, W, C] and, for agents with an
instruction encoder, 'instruction' string [B]. `prev_action` int32 [B] is the
previous action (0 at the first step), `reward` float32 [B] the previous
reward, `done` bool [B] true at the first step of an episode (it resets the
LSTM state). Nothing here carries gradient. Load with
`tf.saved_model.load(path)`.
"""

import json
import os
import tempfile

import tensorflow as tf

from impala_tf import types

INPUTS_ASSET = "inputs.json"

# How each kind of level's observation was made, in words (the numbers
# come from the observation spec and the run).
_FRAME_TEXT = {
    "atari": (
        "The last {c} preprocessed screens stacked on the last axis, oldest "
        "first (at an episode start, {c} copies of the first). Each screen: "
        "ALE's grayscale (luminance palette) of the 210x160 screen, the "
        "pixel-wise max over the last 2 of the {r} emulator frames an action "
        "is repeated for, resized to {h}x{w} by area averaging (OpenCV "
        "INTER_AREA). uint8 0-255, not scaled (the network scales it)."),
    "dmlab": (
        "DeepMind Lab's RGB_INTERLEAVED observation rendered at {w}x{h} "
        "(width x height), uint8 0-255 [{h}, {w}, {c}], one frame (no "
        "stacking), after the {r} frames an action is repeated for."),
    "custom": (
        "The environment's own uint8 observation ['frame'] [{h}, {w}, {c}], "
        "as the level's MODULE:FUNCTION returns it."),
}
_ACTION_TEXT = {
    "atari": ("Index into `names`: the ALE actions this run trained with "
              "(the game's minimal action set, or all 18 for the multi-task "
              "agent), each held for {r} emulator frames."),
    "dmlab": ("Index into `names`, the 9 actions of the paper's Table D.2; "
              "`lab_actions` gives the 7-integer DeepMind Lab action of "
              "each (in the order of `lab_action_names`), sent with "
              "num_steps={r}."),
    "custom": ("The index the environment's DiscreteArray action spec "
               "takes, sent once per step."),
}


def describe_inputs(level_name, kind, observation_spec, num_actions,
                    num_action_repeats, action_names=None, lab_actions=None,
                    lab_action_names=None):
    """What a SavedModel's `step` expects, as a JSON-serialisable dict.

    Args:
      level_name: the run's --level_name.
      kind: 'atari', 'dmlab' or 'custom'.
      observation_spec: {name: tf.TensorSpec} of one observation (no batch).
      num_actions: the size of the action set.
      num_action_repeats: emulator frames per agent step.
      action_names: a name per action index, where known.
      lab_actions, lab_action_names: DeepMind Lab's integer action of each
        index and the names of its dimensions.
    Returns:
      {"level_name", "kind", "observation": {name: {"shape", "dtype",
      "meaning"}}, "actions": {"num_actions", "action_repeats", "meaning",
      "names"?, ...}, "prev_action", "reward", "done"}.
    """
    frame = observation_spec["frame"]
    h, w, c = frame.shape.as_list()
    numbers = dict(h=h, w=w, c=c, r=num_action_repeats)
    text = kind if kind in _FRAME_TEXT else "custom"
    observation = {"frame": {
        "shape": [None, h, w, c], "dtype": frame.dtype.name,
        "meaning": _FRAME_TEXT[text].format(**numbers)}}
    if "instruction" in observation_spec:
        observation["instruction"] = {
            "shape": [None], "dtype": "string",
            "meaning": ("The level's instruction text as the environment "
                        "gives it (DeepMind Lab's INSTR; '' where there is "
                        "none); the model splits and hashes the words "
                        "itself.")}
    actions = {"num_actions": int(num_actions),
               "action_repeats": int(num_action_repeats),
               "meaning": _ACTION_TEXT[text].format(**numbers)}
    if action_names is not None:
        actions["names"] = [str(n) for n in action_names]
    if lab_actions is not None:
        actions["lab_actions"] = [list(map(int, a)) for a in lab_actions]
        actions["lab_action_names"] = list(lab_action_names or [])
    return {
        "level_name": level_name,
        "kind": kind,
        "observation": observation,
        "actions": actions,
        "prev_action": ("int32: the action taken before this observation; "
                        "0 before the first one."),
        "reward": ("float32: the reward that came with this observation, "
                   "summed over the repeated frames and not clipped (the "
                   "network clips it to [-1, 1]); 0 before the first "
                   "action. Training fed a new episode's first step the "
                   "last action and reward of the episode before (the "
                   "release's convention); `impala-tf test` feeds 0 and 0."),
        "done": ("bool: true at an episode's first step (resets the LSTM "
                 "state), false after."),
    }


def describe_run(config, seed=0):
    """`describe_inputs` for a run's `config.TrainConfig`: builds one
    environment of its level set to read the action names (Atari) and
    closes it."""
    level_set = config.actor.level_set
    extra = {}
    if level_set.kind == "dmlab":
        from impala_tf.envs import dmlab_common  # pylint: disable=g-import-not-at-top
        extra = dict(action_names=dmlab_common.ACTION_NAMES,
                     lab_actions=dmlab_common.DEFAULT_ACTION_SET,
                     lab_action_names=dmlab_common.LAB_ACTION_NAMES)
    elif level_set.kind == "atari":
        env = level_set.make(0, seed=seed, is_test=True)
        try:
            extra = dict(action_names=env.action_names)  # A property.
        finally:
            env.close()
    return describe_inputs(
        level_set.name, level_set.kind, config.actor.observation_spec,
        config.actor.agent.num_actions, config.learner.num_action_repeats,
        **extra)


class ExportedPolicy(tf.Module):
    """A `tf.Module` wrapping an agent's step with flat input signatures."""

    def __init__(self, agent, observation_spec, inputs=None):
        super().__init__(name="impala_policy")
        self._agent = agent
        self.variables_list = list(agent.variables)
        obs_sig = {k: tf.TensorSpec([None] + s.shape.as_list(), s.dtype,
                                    name=k)
                   for k, s in observation_spec.items()}
        state_sig = tuple(tf.TensorSpec(s.shape, s.dtype, name=f"state_{i}")
                          for i, s in enumerate(
                              tf.nest.flatten(agent.state_spec(None))))
        self._state_structure = agent.state_spec(None)
        self.step = tf.function(self._step, input_signature=(
            obs_sig, tf.TensorSpec([None], tf.int32, name="prev_action"),
            tf.TensorSpec([None], tf.float32, name="reward"),
            tf.TensorSpec([None], tf.bool, name="done"), state_sig))
        self.initial_state = tf.function(
            self._initial_state,
            input_signature=(tf.TensorSpec([], tf.int32,
                                           name="batch_size"),))
        self._inputs_json = json.dumps(inputs or {}, indent=1)
        self.inputs = tf.function(
            lambda: tf.constant(self._inputs_json), input_signature=())

    def _initial_state(self, batch_size):
        return tuple(tf.nest.flatten(self._agent.initial_state(batch_size)))

    def _step(self, observation, prev_action, reward, done, state):
        state = tf.nest.pack_sequence_as(self._state_structure, list(state))
        out, new_state = self._agent.step(
            prev_action, types.EnvOutput(reward, done, dict(observation)),
            state)
        return {"action": out.action, "policy_logits": out.policy_logits,
                "baseline": out.baseline,
                "state": tuple(tf.nest.flatten(new_state))}


def export_policy(agent, observation_spec, export_dir, inputs=None):
    """Writes the SavedModel; `agent` must have its variables built.

    `inputs`: the `describe_inputs` dict, returned by the model's `inputs()`
    and written to `<export_dir>/assets/inputs.json` (empty if None).
    """
    policy = ExportedPolicy(agent, observation_spec, inputs)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, INPUTS_ASSET)
        with open(path, "w") as f:
            f.write(policy._inputs_json + "\n")  # pylint: disable=protected-access
        policy.inputs_file = tf.saved_model.Asset(path)
        tf.saved_model.save(policy, export_dir)
    return export_dir
