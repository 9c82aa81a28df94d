"""The errors that explain themselves: the CLI prints them without a traceback."""

from metamon_sp.checkpoint import CheckpointError
from metamon_sp.collect import CollectError
from metamon_sp.filter import FilterError
from metamon_sp.players import PlayerSpecError
from metamon_sp.runlock import RunBusyError
from metamon_sp.showdown.install import ShowdownInstallError
from metamon_sp.showdown.server import ShowdownServerError
from metamon_sp.teams import TeamError
from metamon_sp.train_data import TrainDataError
from metamon_sp.trajectories import DatasetError, ShardError

USER_ERRORS: tuple[type[BaseException], ...] = (
    CheckpointError, CollectError, DatasetError, TrainDataError, FilterError, PlayerSpecError,
    RunBusyError, ShardError, ShowdownInstallError, ShowdownServerError, TeamError,
)
