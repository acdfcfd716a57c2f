"""`AgentConfig`: what it takes to rebuild the same network in any process."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """The network's description; actors and learners build it from this.

    torso: one of `agents.AGENT_NAMES`; num_actions: A; use_lstm: LSTM core;
    use_instruction: encode observation['instruction'] (DMLab language).
    """
    torso: str
    num_actions: int
    use_lstm: bool
    use_instruction: bool

    def build(self):
        """A new `ImpalaAgent` (its variables are created on first call)."""
        from impala_tf.agents import make_agent  # pylint: disable=g-import-not-at-top
        return make_agent(
            self.torso, self.num_actions, use_lstm=self.use_lstm,
            use_instruction=self.use_instruction)
