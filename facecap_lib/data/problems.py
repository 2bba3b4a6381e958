"""Bad input in dataset files: strict by default, lenient on request, never silent.

A loader reports each problem it meets (missing image, malformed line, unknown code, duplicate
row ...) to a :class:`ProblemLog`. In strict mode (the default) the first problem raises
:class:`DataFormatError`, whose message names the file, the line and what is wrong. In lenient
mode the offending row or token is skipped and counted; the counts travel with the returned
table in ``df.attrs["problems"]`` and are logged as a warning, so nothing is dropped unseen.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("facecap.data")


class DataFormatError(ValueError):
    """A dataset file says something the loader cannot accept."""

    def __init__(self, path: str | Path, line: int | None, reason: str, detail: str):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {detail} [{reason}]")
        self.path, self.line, self.reason, self.detail = Path(path), line, reason, detail


@dataclass
class ProblemLog:
    """Collects problems; raises at the first one in strict mode."""

    strict: bool = True
    examples: dict[str, str] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)

    def report(self, path: str | Path, line: int | None, reason: str, detail: str) -> None:
        error = DataFormatError(path, line, reason, detail)
        if self.strict:
            raise error
        self.counts[reason] += 1
        self.examples.setdefault(reason, str(error))

    def attach(self, df, source: str):
        """Record the counts on ``df.attrs`` and log a one-line summary if anything was skipped."""
        df.attrs["problems"] = dict(self.counts)
        if self.counts:
            summary = ", ".join(f"{n} {reason}" for reason, n in sorted(self.counts.items()))
            log.warning(
                "%s: skipped %s (lenient mode); e.g. %s",
                source,
                summary,
                next(iter(self.examples.values())),
            )
        return df
