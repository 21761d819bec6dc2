"""Ingestion: ``rows`` maps a submission document to SQL rows (pure); ``write`` writes a page of them."""

from aggregator.ingest.rows import (
    FORM_FACILITY,
    FORM_HOUSEHOLD,
    PERSONAL_FIELDS,
    BadSubmission,
    DocRows,
    RepeatsOf,
    build_rows,
    compiled_repeats,
    default_repeats,
    instance_dict,
    periods,
)
from aggregator.ingest.write import MappedPage, PageOutcome, apply_page, describe_failure, map_page, upsert
from core.ages import age  # the one age rule (ingestion has no copy of its own)

__all__ = [
    "FORM_FACILITY",
    "FORM_HOUSEHOLD",
    "PERSONAL_FIELDS",
    "BadSubmission",
    "DocRows",
    "RepeatsOf",
    "MappedPage",
    "PageOutcome",
    "age",
    "apply_page",
    "build_rows",
    "compiled_repeats",
    "default_repeats",
    "describe_failure",
    "instance_dict",
    "map_page",
    "periods",
    "upsert",
]
