"""The population directory: how PBT members coordinate, through files only.

Layout of a population's `--logdir` (a shared filesystem across hosts):
  member_<i>/               member i's run: an ordinary training --logdir
                            (checkpoints/, progress.jsonl, train/, ...)
  fitness/member_<i>.json   member i's latest fitness record, replaced by an
                            atomic rename (a reader sees the old or the new)
  pbt.jsonl                 every PBT event, one JSON object per line,
                            each appended with one write (a torn line,
                            possible on a network filesystem, is skipped
                            and counted by the reader: `read_event_log`)

Copying a donor's weights (`copy_latest_checkpoint`): the donor's
'checkpoint' state file only ever names a complete checkpoint (the
`tf.train.CheckpointManager` writes files under temporary names and replaces
the state file by a rename once they are complete), but the donor deletes
old checkpoints as it saves new ones. So the recipient reads the state file,
copies that checkpoint's files into a private directory, checks that every
tensor of the copy reads back (checksums), and starts again from the state
file if a file vanished or did not read back. It never reads the donor's
files in place, and the donor is never disturbed.

No TensorFlow at import time (the supervisor and `--plot` need none).
"""

import json
import os
import re
import shutil
import time
import typing

EVENTS_FILE = "pbt.jsonl"


def _shards(prefix):
    """The files of the checkpoint `prefix`: its index and every data shard
    ('<prefix>.data-00000-of-00002', ...), named from the first shard found
    (FileNotFoundError if there is none)."""
    directory, base = os.path.split(prefix)
    data = [n for n in os.listdir(directory)
            if n.startswith(base + ".data-")]
    if not data:
        raise FileNotFoundError(prefix + ".data-*")
    count = int(re.search(r"-of-(\d+)$", data[0]).group(1))
    return [base + ".index"] + [f"{base}.data-{k:05d}-of-{count:05d}"
                                for k in range(count)]


def _reads_back(prefix):
    """True if every tensor of checkpoint `prefix` reads (CRC-checked)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except (tf.errors.OpError, ValueError):
        return False
    return True


class Population:
    """The files of one population.

    Args:
      logdir: the population's directory (`--logdir`).
      size: the number of members.
    """

    def __init__(self, logdir, size):
        self.logdir, self.size = logdir, size
        os.makedirs(os.path.join(logdir, "fitness"), exist_ok=True)

    def member_dir(self, member):
        """`<logdir>/member_<member>`: the member's run directory."""
        return os.path.join(self.logdir, f"member_{member}")

    def checkpoint_dir(self, member):
        return os.path.join(self.member_dir(member), "checkpoints")

    def _fitness_path(self, member):
        return os.path.join(self.logdir, "fitness", f"member_{member}.json")

    @property
    def events_path(self):
        return os.path.join(self.logdir, EVENTS_FILE)

    def write_fitness(self, member, record):
        """Replaces member's fitness record (a JSON dict) atomically."""
        path = self._fitness_path(member)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(record, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def read_fitness(self, member):
        """Member's latest fitness record (dict), or None if it has none."""
        try:
            with open(self._fitness_path(member)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def append_event(self, record):
        """Appends one JSON line to pbt.jsonl in a single write (O_APPEND:
        lines of concurrent members do not interleave)."""
        line = (json.dumps(record) + "\n").encode()
        fd = os.open(self.events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                     0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def events(self):
        """The events of pbt.jsonl, oldest first (a line still being
        written, without its newline, and torn lines are left out)."""
        return read_events(self.logdir)

    def event_log(self):
        """`read_event_log` of this population: (events, torn)."""
        return read_event_log(self.logdir)

    def copy_latest_checkpoint(self, member, dest_dir, attempts=10):
        """Copies member's latest complete checkpoint into `dest_dir` (made
        afresh); returns the copy's prefix, or None if the member has no
        checkpoint or none could be copied whole in `attempts` tries."""
        from impala_tf.runtime import checkpoints
        for attempt in range(attempts):
            prefix = checkpoints.latest(self.checkpoint_dir(member))
            if prefix is None:
                return None
            shutil.rmtree(dest_dir, ignore_errors=True)
            tmp = dest_dir + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            try:
                for name in _shards(prefix):
                    shutil.copyfile(os.path.join(os.path.dirname(prefix),
                                                 name),
                                    os.path.join(tmp, name))
            except FileNotFoundError:  # Deleted by a newer save: again.
                time.sleep(0.05 * (attempt + 1))
                continue
            os.replace(tmp, dest_dir)
            copy = os.path.join(dest_dir, os.path.basename(prefix))
            if _reads_back(copy):
                return copy
        return None


# The fields every event has (`pbt_member.PbtHook.evolve`) that the
# supervisor and the plot read.
EVENT_FIELDS = ("member", "frames", "fitness", "copied", "hyperparameters")


class EventLog(typing.NamedTuple):
    """pbt.jsonl as read: its whole events and the torn lines skipped."""
    events: list
    torn: int


def _event(line):
    """The event of one complete line of pbt.jsonl (bytes), or None if it
    is torn: not UTF-8 JSON of an object with `EVENT_FIELDS`."""
    try:
        event = json.loads(line.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError and JSONDecodeError too.
        return None
    if (not isinstance(event, dict)
            or any(k not in event for k in EVENT_FIELDS)
            or not isinstance(event["hyperparameters"], dict)):
        return None
    return event


def read_event_log(logdir):
    """`<logdir>/pbt.jsonl`: its events, oldest first, and the number of
    torn lines skipped.

    An append is one write, atomic on a local filesystem; a network
    filesystem (NFS) does not promise it, so two members' lines may be
    mixed or a line cut short. Such a line is skipped and counted, not
    raised. A last line without its newline is still being written: left
    out, not counted.
    """
    try:
        with open(os.path.join(logdir, EVENTS_FILE), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return EventLog([], 0)
    events, torn = [], 0
    for line in data.split(b"\n")[:-1]:
        if not line.strip():
            continue
        event = _event(line)
        if event is None:
            torn += 1
        else:
            events.append(event)
    return EventLog(events, torn)


def torn_lines_sentence(logdir, torn):
    """The one line that says `torn` lines of pbt.jsonl were skipped."""
    return (f"[pbt] {os.path.join(logdir, EVENTS_FILE)}: skipped {torn} "
            f"torn line{'s' if torn != 1 else ''} (not one whole event; "
            "appends from several hosts are not atomic on a network "
            "filesystem)")


def read_events(logdir):
    """The events of `<logdir>/pbt.jsonl`, torn lines skipped
    (`read_event_log`)."""
    return read_event_log(logdir).events
