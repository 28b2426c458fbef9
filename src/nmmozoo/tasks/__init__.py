"""The task system: vectorised predicates, task specs, the training curriculum, the 63
held-out evaluation tasks and offline task embeddings."""

from .curriculum import training_curriculum
from .engine import CATEGORIES, TaskEngine
from .heldout import heldout_tasks, score
from .predicates import PREDICATES, PredicateError
from .spec import Clause, TaskError, TaskSpec, from_dict, load_tasks, task, to_dict

__all__ = ["training_curriculum", "CATEGORIES", "TaskEngine", "heldout_tasks", "score",
           "PREDICATES", "PredicateError", "Clause", "TaskError", "TaskSpec", "from_dict",
           "load_tasks", "task", "to_dict"]
