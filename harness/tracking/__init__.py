"""A finished run, read back from its run directory, for other tools: experiment trackers
(``--log mlflow`` / ``--log wandb``) and lm-eval-style results files (``results_<model>.json``).

mlflow and wandb are imported only inside the functions that log (they are slow to import and
optional: ``pip install 'checkpoint-harness[tracking]'``)."""

from harness.tracking.lm_eval_results import lm_eval_results, write_lm_eval_results
from harness.tracking.log import log_run
from harness.tracking.targets import Target, check_targets, parse_targets

__all__ = ["Target", "check_targets", "lm_eval_results", "log_run", "parse_targets", "write_lm_eval_results"]
