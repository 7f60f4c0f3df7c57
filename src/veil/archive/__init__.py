"""Archive scale: resumable batches (an SQLite ledger), local worker processes, Ray, HTML reports.

    cli.redact -> choose (executor, ledger) -> driver.run_batch -> executor -> worker.run_task
                                                      |                          (pipeline.redact_file)
                                                      +-> ledger (driver only)

Ray is imported only by ray_runner, and only when `--ray` is given.
"""

from .driver import MAX_TRIES, BatchSettings, run_batch
from .html_report import html_path, write_html
from .ledger import LEDGER_NAME, Ledger, LedgerError, State, content_hash, settings_hash
from .status import status_lines

__all__ = ["run_batch", "BatchSettings", "MAX_TRIES", "Ledger", "LedgerError", "State", "LEDGER_NAME",
           "content_hash", "settings_hash", "status_lines", "html_path", "write_html"]
