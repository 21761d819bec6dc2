"""Indicator definitions (data, DHIS2-style): the model, the condition language and the YAML loader.

``model`` holds the types, ``condition`` compiles the small safe language of ``where:`` clauses to SQL,
``load`` reads and validates the ``*.yaml`` files beside this package.
"""

from aggregator.indicators.condition import ConditionError, age_group_sql, compile_condition, dimension_sql
from aggregator.indicators.load import get, load, load_file, parse_definition, readme_table, write_readme
from aggregator.indicators.model import (
    DIMENSION_VALUES,
    DIMENSIONS,
    KINDS,
    TARGET_OPS,
    UNITS,
    Indicator,
    Measure,
)
from aggregator.indicators.sources import SOURCES, Source

__all__ = [
    "DIMENSION_VALUES",
    "DIMENSIONS",
    "KINDS",
    "SOURCES",
    "TARGET_OPS",
    "UNITS",
    "ConditionError",
    "Indicator",
    "Measure",
    "Source",
    "age_group_sql",
    "compile_condition",
    "dimension_sql",
    "get",
    "load",
    "load_file",
    "parse_definition",
    "readme_table",
    "write_readme",
]
