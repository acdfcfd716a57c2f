"""runtime/export.py: the SavedModel of a policy, loaded in a fresh process
without impala_tf or Sonnet, and the record of the inputs it expects."""

import json
import os
import subprocess
import sys
import textwrap
import types as pytypes

import numpy as np
import pytest
import tensorflow as tf

from impala_tf import agents
from impala_tf import testing
from impala_tf import types
from impala_tf.envs import registry
from impala_tf.runtime import export

FRAME = [24, 24, 3]


def _spec(shape=FRAME, instruction=False):
    spec = {"frame": tf.TensorSpec(shape, tf.uint8)}
    if instruction:
        spec["instruction"] = tf.TensorSpec([], tf.string)
    return spec


def test_describe_inputs_atari():
    got = export.describe_inputs(
        "atari/pong", "atari", _spec([84, 84, 4]), 6, 4,
        action_names=["NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE",
                      "LEFTFIRE"])
    frame = got["observation"]["frame"]
    assert frame["shape"] == [None, 84, 84, 4] and frame["dtype"] == "uint8"
    for words in ("last 4 preprocessed screens", "oldest first", "grayscale",
                  "max over the last 2 of the 4", "84x84", "area averaging"):
        assert words in frame["meaning"]
    assert "instruction" not in got["observation"]
    assert got["actions"]["num_actions"] == 6
    assert got["actions"]["action_repeats"] == 4
    assert got["actions"]["names"][1] == "FIRE"
    assert "not clipped" in got["reward"]
    json.dumps(got)  # Serialisable.


def test_describe_run_reads_the_games_action_set():
    config = pytypes.SimpleNamespace(
        actor=pytypes.SimpleNamespace(
            level_set=registry.parse_level_name("atari/pong"),
            observation_spec=_spec([84, 84, 4]),
            agent=agents.AgentConfig("shallow", 6, False, False)),
        learner=pytypes.SimpleNamespace(num_action_repeats=4))
    got = export.describe_run(config)
    assert got["level_name"] == "atari/pong" and got["kind"] == "atari"
    # Pong's minimal action set, in ALE's order.
    assert got["actions"]["names"] == ["NOOP", "FIRE", "RIGHT", "LEFT",
                                       "RIGHTFIRE", "LEFTFIRE"]


def test_describe_inputs_dmlab():
    from impala_tf.envs import dmlab_common
    got = export.describe_inputs(
        "rooms_watermaze", "dmlab", _spec([72, 96, 3], instruction=True), 9,
        4, action_names=dmlab_common.ACTION_NAMES,
        lab_actions=dmlab_common.DEFAULT_ACTION_SET,
        lab_action_names=dmlab_common.LAB_ACTION_NAMES)
    assert got["observation"]["frame"]["shape"] == [None, 72, 96, 3]
    assert "96x72" in got["observation"]["frame"]["meaning"]
    assert got["observation"]["instruction"]["dtype"] == "string"
    assert got["actions"]["names"][0] == "forward"
    # Table D.2: Forward+Look Right is (20, 0, 0, 1, 0, 0, 0).
    assert got["actions"]["lab_actions"][7] == [20, 0, 0, 1, 0, 0, 0]
    assert len(got["actions"]["lab_action_names"]) == 7


LOAD_SCRIPT = textwrap.dedent("""
    import json, os, sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("sonnet", "impala_tf"):
                raise ImportError("blocked: " + name)
    sys.meta_path.insert(0, Block())
    sys.path = [p for p in sys.path if p not in ("", ".", REPO)]
    import numpy as np, tensorflow as tf
    path = sys.argv[1]
    policy = tf.saved_model.load(path)
    inputs = json.loads(policy.inputs().numpy().decode())
    with open(os.path.join(path, "assets", "inputs.json")) as f:
        assert json.load(f) == inputs
    frame = np.load(os.path.join(sys.argv[2], "frame.npy"))
    obs = {"frame": tf.constant(frame)}
    if "instruction" in inputs["observation"]:
        obs["instruction"] = tf.constant(["go to the red ball"] * len(frame))
    b = len(frame)
    state = policy.initial_state(tf.constant(b))
    out = policy.step(obs, tf.zeros([b], tf.int32), tf.zeros([b]),
                      tf.ones([b], tf.bool), state)
    np.save(os.path.join(sys.argv[2], "logits.npy"),
            out["policy_logits"].numpy())
    assert out["action"].dtype == tf.int32 and out["action"].shape == (b,)
    assert "sonnet" not in sys.modules and "impala_tf" not in sys.modules
    print(json.dumps(inputs))
""").replace("REPO", repr(testing.REPO))


@pytest.mark.parametrize("use_lstm,instruction", [(False, False),
                                                  (True, True)])
def test_saved_model_loads_in_a_fresh_process(tmp_path, use_lstm,
                                              instruction):
    num_actions, batch = 3, 2
    agent = agents.make_agent("shallow", num_actions, use_lstm=use_lstm,
                              use_instruction=instruction)
    spec = _spec(instruction=instruction)
    frame = np.random.default_rng(0).integers(0, 256, [batch] + FRAME,
                                              np.uint8)
    obs = {"frame": tf.constant(frame)}
    if instruction:
        obs["instruction"] = tf.constant(["go to the red ball"] * batch)
    expected, _ = agent.step(  # Builds the variables, and the reference.
        tf.zeros([batch], tf.int32),
        types.EnvOutput(tf.zeros([batch]), tf.ones([batch], tf.bool), obs),
        agent.initial_state(batch))
    inputs = export.describe_inputs(
        "impala_tf.envs.toy:colour_choice", "custom", spec, num_actions, 1)
    export_dir = str(tmp_path / "policy")
    export.export_policy(agent, spec, export_dir, inputs=inputs)
    np.save(tmp_path / "frame.npy", frame)

    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, export_dir, str(tmp_path)],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == json.loads(
        json.dumps(inputs))
    np.testing.assert_allclose(np.load(tmp_path / "logits.npy"),
                               expected.policy_logits.numpy(), atol=1e-5)
