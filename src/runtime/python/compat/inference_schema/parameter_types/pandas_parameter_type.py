"""PandasParameterType: a DataFrame sample; requests send the frame as JSON in the chosen orient
('records' by default: a list of {column: value} objects), run() gets a DataFrame with the sample's
column types and number of columns."""

import io
import json

import pandas as pd

from ._constants import SWAGGER_FORMAT_CONSTANTS
from ._util import get_swagger_for_list, get_swagger_for_nested_dict
from .abstract_parameter_type import AbstractParameterType

_ORIENTS = ("split", "records", "index", "columns", "values", "table")


class PandasParameterType(AbstractParameterType):
    def __init__(self, sample_input, enforce_column_type=True, enforce_shape=True, apply_column_names=False,
                 orient="records"):
        if not isinstance(sample_input, pd.DataFrame):
            raise TypeError("Invalid sample input provided, must provide a sample Pandas Dataframe.")
        if orient not in _ORIENTS:
            raise ValueError("Invalid orient provided, must be one of %s" % (_ORIENTS,))
        super().__init__(sample_input)
        self.enforce_column_type = enforce_column_type
        self.enforce_shape = enforce_shape
        self.apply_column_names = apply_column_names
        self.orient = orient

    def deserialize_input(self, input_data):
        if isinstance(input_data, pd.DataFrame):
            return input_data
        if not isinstance(input_data, (list, dict)):
            raise ValueError("unable to convert input of type %s into a Pandas DataFrame" % type(input_data).__name__)
        frame = pd.read_json(io.StringIO(json.dumps(input_data)), orient=self.orient)
        if self.apply_column_names:
            frame.columns = self.sample_input.columns.copy()
        if self.enforce_column_type:
            sample_types = self.sample_input.dtypes.to_dict()
            wanted = {c: sample_types.get(c, object) for c in frame.columns}
            for column, kind in wanted.items():
                if str(kind).startswith("timedelta"):
                    frame[column] = pd.to_timedelta(frame[column])
            frame = frame.astype(dtype=wanted)
        if self.enforce_shape:
            expected = self.sample_input.shape
            got = frame.shape
            if len(got) != len(expected):
                raise ValueError("Invalid input data frame: a data frame with %d dimensions is expected; input has %d [shape %s]"
                                 % (len(expected), len(got), got))
            for dim in range(1, len(expected)):
                if got[dim] != expected[dim]:
                    raise ValueError("Invalid input data frame: data frame has size %d on dimension #%d, while expected value is %d"
                                     % (got[dim], dim, expected[dim]))
        return frame

    def input_to_swagger(self):
        sample = json.loads(self.sample_input.to_json(orient=self.orient, date_format="iso"))
        if self.orient in ("records", "values"):
            schema = get_swagger_for_list(sample)
        else:
            schema = get_swagger_for_nested_dict(sample)
        for column in self.sample_input.columns:
            kind = str(self.sample_input.dtypes[column])
            fmt = "date-time" if kind.startswith("datetime") else "timedelta" if kind.startswith("timedelta") else None
            if fmt is None:
                continue
            for props in self._column_schemas(schema, str(column)):
                props["format"] = fmt
        schema["format"] = SWAGGER_FORMAT_CONSTANTS.PANDAS_FORMAT
        return schema

    def _column_schemas(self, schema, column):
        """Where a column's schema sits for each orient."""
        if self.orient == "records":
            return [schema["items"]["properties"][column]]
        if self.orient == "index":
            return [row["properties"][column] for row in schema["properties"].values()]
        if self.orient == "columns":
            return list(schema["properties"][column]["properties"].values())
        if self.orient == "table":
            return [schema["properties"]["data"]["items"]["properties"][column]]
        return []
