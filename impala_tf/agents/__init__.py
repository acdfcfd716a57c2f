"""IMPALA agents (Sonnet 2): shallow and deep torsos, instruction encoder,
LSTM or feed-forward core, policy and baseline heads."""

from impala_tf.agents.agent import ImpalaAgent
from impala_tf.agents.config import AgentConfig
from impala_tf.agents.instruction import InstructionEncoder
from impala_tf.agents.torsos import DeepTorso
from impala_tf.agents.torsos import ResidualBlock
from impala_tf.agents.torsos import ShallowTorso
from impala_tf.agents.torsos import TORSO_NAMES

AGENT_NAMES = TORSO_NAMES  # ('shallow', 'deep')


def make_agent(name, num_actions, use_lstm=True, use_instruction=False,
               lstm_size=256):
    """Returns an ImpalaAgent with the torso `name` ('shallow' or 'deep').

    Args:
      name: one of AGENT_NAMES.
      num_actions: number of discrete actions A.
      use_lstm: LSTM core (DMLab) if True, feed-forward (Atari) if False.
      use_instruction: encode observation['instruction'] (DMLab language).
      lstm_size: LSTM units.
    """
    if name not in AGENT_NAMES:
        raise ValueError("Unknown agent %r; expected one of %s"
                         % (name, AGENT_NAMES))
    return ImpalaAgent(num_actions, torso=name, use_lstm=use_lstm,
                       use_instruction=use_instruction, lstm_size=lstm_size,
                       name="%s_agent" % name)


__all__ = [
    "AGENT_NAMES", "AgentConfig", "DeepTorso", "ImpalaAgent", "InstructionEncoder",
    "ResidualBlock", "ShallowTorso", "TORSO_NAMES", "make_agent",
]
