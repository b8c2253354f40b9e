"""NumpyParameterType: a numpy array sample; requests send nested lists, run() gets an ndarray of the
sample's dtype, with the same number of dimensions and the same size in every dimension but the first."""

import numpy as np

from ._constants import SWAGGER_FORMAT_CONSTANTS
from ._swagger_from_dtype import Dtype2Swagger
from .abstract_parameter_type import AbstractParameterType

_TIMEDELTA_UNITS = {
    "years": "Y", "months": "M", "weeks": "W", "days": "D", "hours": "h", "minutes": "m", "seconds": "s",
    "milliseconds": "ms", "microseconds": "us", "nanoseconds": "ns", "picoseconds": "ps",
    "femtoseconds": "fs", "attoseconds": "as",
}


class NumpyParameterType(AbstractParameterType):
    def __init__(self, sample_input, enforce_column_type=True, enforce_shape=True):
        if not isinstance(sample_input, np.ndarray):
            raise TypeError("Invalid sample input provided, must provide a sample Numpy array.")
        super().__init__(sample_input)
        self.enforce_column_type = enforce_column_type
        self.enforce_shape = enforce_shape

    def deserialize_input(self, input_data):
        if isinstance(input_data, np.ndarray):
            return input_data
        if not isinstance(input_data, list):
            raise ValueError("Invalid input format: expected an array of items.")
        dtype = self.sample_input.dtype
        if self.enforce_column_type:
            rows = [_prepare(row, dtype) for row in input_data]
            array = np.array(rows, dtype=dtype)
        else:
            array = np.array(input_data)
        if self.enforce_shape:
            expected = self.sample_input.shape
            got = array.shape
            if len(got) != len(expected):
                raise ValueError("Invalid input array: an array with %d dimensions is expected; input has %d [shape %s]"
                                 % (len(expected), len(got), got))
            for dim in range(1, len(expected)):
                if got[dim] != expected[dim]:
                    raise ValueError("Invalid input array: array has size %d on dimension #%d, while expected value is %d"
                                     % (got[dim], dim, expected[dim]))
        return array

    def input_to_swagger(self):
        sample = self.sample_input
        item = Dtype2Swagger.convert_dtype_to_swagger(sample.dtype)
        schema = Dtype2Swagger.handle_swagger_array(item, sample.shape)
        schema["example"] = self._get_swagger_sample(sample, len(sample), schema["items"])
        schema["format"] = SWAGGER_FORMAT_CONSTANTS.NUMPY_FORMAT
        return schema


def _prepare(value, dtype):
    """Turns a JSON record into what np.array accepts for a structured dtype (tuples; dates parsed)."""
    if dtype.names:
        if isinstance(value, dict):
            return tuple(_prepare(value[n], dtype[n]) for n in dtype.names)
        return tuple(_prepare(value[i], dtype[i]) for i in range(len(dtype.names)))
    name = dtype.name.lower()
    if name.startswith("datetime"):
        return np.datetime64(value)
    if name.startswith("timedelta"):
        number, _, unit = str(value).partition(" ")
        if unit.lower() not in _TIMEDELTA_UNITS:
            raise ValueError("Invalid numpy.timedelta64 value specified: %s. Format should be <value> <time_unit>" % value)
        return np.timedelta64(int(number), _TIMEDELTA_UNITS[unit.lower()])
    return value
