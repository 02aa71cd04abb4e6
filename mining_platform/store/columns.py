"""Committed partitions read straight into Arrow columns (pymongoarrow): how training and drift reports read.

Only numeric features become columns (int and float as float64, bool as bool): what
XGBoost trains on and what drift is measured for; string and date features stay in
the documents.
"""

import warnings

import pyarrow as pa

from mining_platform.spec.definition import FeatureType

with warnings.catch_warnings():
    # pymongoarrow's Cython extension warns that pyarrow's array structs grew; harmless
    # for the pinned pair (pymongoarrow 1.15 declares pyarrow 25.0.x).
    warnings.filterwarnings("ignore", message=r"pyarrow\.lib\.\w+ size changed", category=RuntimeWarning)
    from pymongoarrow.api import Schema, find_arrow_all

NUMERIC_TYPES = {FeatureType.int: pa.float64(), FeatureType.float: pa.float64(), FeatureType.bool: pa.bool_()}

__all__ = ["NUMERIC_TYPES", "Schema", "find_arrow_all"]
