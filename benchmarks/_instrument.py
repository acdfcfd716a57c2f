"""Timers over the real objects of an actor process (`profile_step`).

`Profiler` charges the process CPU time spent inside each timed call, less
the time of the timed calls nested in it, to the call's category;
`instrument` replaces the actor's components by timed ones on their
instances (and gives back what undoes it); `timer_cost` measures what one
timed call adds, so that it can be taken off (`Profiler.corrected`).
"""

import time

CATEGORIES = {  # fine category -> the top-level one it is reported under
    "emulation": "emulation",
    "emulation (repeat loop)": "emulation",
    "grayscale": "preprocessing",
    "resize": "preprocessing",
    "frame stack": "preprocessing",
    "observation copy": "preprocessing",
    "env loop": "env loop",
    "inference": "inference",
    "weight pull": "transport",
    "enqueue": "transport",
    "actor other": "actor other",
}
TOP = ("emulation", "preprocessing", "env loop", "inference", "transport",
       "actor other")


class Profiler:
    """Exclusive process-CPU time per category over nested timed calls.

    `wrap(fn, category)` returns fn timed; calls made inside it that are
    themselves timed are charged to their own category. Time outside any
    timed call goes to `root`.
    """

    def __init__(self, root, clock=time.process_time):
        self._clock = clock
        self._stack = [root]
        self._last = None
        self.cpu = {}
        self.calls = {}  # (category, caller category) -> count

    def start(self):
        self._last = self._clock()

    def stop(self):
        now = self._clock()
        top = self._stack[-1]
        self.cpu[top] = self.cpu.get(top, 0.0) + now - self._last
        self._last = now

    def wrap(self, fn, category):
        def timed(*args, **kwargs):
            now = self._clock()
            stack, top = self._stack, self._stack[-1]
            self.cpu[top] = self.cpu.get(top, 0.0) + now - self._last
            key = (category, top)
            self.calls[key] = self.calls.get(key, 0) + 1
            stack.append(category)
            self._last = now
            try:
                return fn(*args, **kwargs)
            finally:
                now = self._clock()
                self.cpu[category] = (self.cpu.get(category, 0.0) + now
                                      - self._last)
                stack.pop()
                self._last = now
        return timed

    def corrected(self, overhead_s):
        """cpu per category less the timers' own cost: half of
        `overhead_s` per call off the callee, half off the caller."""
        cpu = dict(self.cpu)
        for (category, caller), n in self.calls.items():
            cpu[category] = cpu.get(category, 0.0) - n * overhead_s / 2
            cpu[caller] = cpu.get(caller, 0.0) - n * overhead_s / 2
        return cpu


class _AleProxy:
    """An ALEInterface with `act`, `reset_game` and `getScreenGrayscale`
    timed; its other methods are the real bound methods."""

    def __init__(self, ale, profiler):
        self._ale = ale
        self.act = profiler.wrap(ale.act, "emulation")
        self.reset_game = profiler.wrap(ale.reset_game, "emulation")
        self.getScreenGrayscale = profiler.wrap(ale.getScreenGrayscale,
                                                "grayscale")
        self.game_over = ale.game_over
        self.lives = ale.lives

    def __getattr__(self, name):
        return getattr(self._ale, name)


class Patches:
    """Instance attributes replaced by timed ones, and put back."""

    def __init__(self):
        self._saved = []

    def set(self, obj, name, value):
        self._saved.append((obj, name, name in vars(obj),
                            vars(obj).get(name)))
        setattr(obj, name, value)

    def undo(self):
        for obj, name, had, old in reversed(self._saved):
            if had:
                setattr(obj, name, old)
            else:
                delattr(obj, name)
        self._saved = []


def instrument(actor, transport, profiler):
    """Times the actor's real components in place; returns `Patches`."""
    p, wrap = Patches(), profiler.wrap
    envs = actor._envs  # pylint: disable=protected-access
    batch = envs._batch  # pylint: disable=protected-access
    for game in batch._games:  # pylint: disable=protected-access
        p.set(game, "_ale", _AleProxy(game._ale, profiler))  # pylint: disable=protected-access
        p.set(game, "act", wrap(game.act, "emulation (repeat loop)"))
        p.set(game, "reset_game", wrap(game.reset_game,
                                       "emulation (repeat loop)"))
    p.set(batch, "_resize", wrap(batch._resize, "resize"))  # pylint: disable=protected-access
    stack = batch._stack  # pylint: disable=protected-access
    p.set(stack, "push", wrap(stack.push, "frame stack"))
    p.set(stack, "restart", wrap(stack.restart, "frame stack"))
    p.set(batch, "_observation", wrap(batch._observation,  # pylint: disable=protected-access
                                      "observation copy"))
    p.set(batch, "step", wrap(batch.step, "env loop"))
    p.set(envs, "step_into", wrap(envs.step_into, "env loop"))
    p.set(actor, "_policy", wrap(actor._policy, "inference"))  # pylint: disable=protected-access
    p.set(transport, "pull_weights", wrap(transport.pull_weights,
                                          "weight pull"))
    p.set(transport, "enqueue", wrap(transport.enqueue, "enqueue"))
    for v in actor._variables:  # pylint: disable=protected-access
        p.set(v, "assign", wrap(v.assign, "weight pull"))
    return p


def timer_cost(profiler, calls=20000):
    """CPU seconds one timed call adds (a no-op, timed, in this process)."""
    noop = profiler.wrap(lambda: None, "calibration")
    profiler.start()
    for _ in range(1000):
        noop()
    t0 = time.process_time()
    for _ in range(calls):
        noop()
    return (time.process_time() - t0) / calls
